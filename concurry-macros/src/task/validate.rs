//! The rules a `#[task]` function must follow, one function per rule. Each reports at the
//! offending token and says the fix.

use quote::ToTokens;
use syn::visit::Visit;
use syn::{ReturnType, Type};

use super::model::Task;
use crate::ctxt::Ctxt;
use crate::worker::args::{ModeArg, WorkerArgs};
use crate::worker::validate::{Finder, owned_suggestion, pretty};

/// Type names the companion module defines; a single-segment type of the same name in the
/// signature would resolve to them inside the module.
pub(crate) const MODULE_TYPES: &[&str] = &["Handle", "Options", "__RemoteTask"];

/// What `#[task(remote)]` adds to them: the public alias of the function as a remote task.
pub(crate) const REMOTE_MODULE_TYPES: &[&str] = &["Task"];

/// Runs every rule; true when the expansion can go ahead.
pub(crate) fn check(cx: &mut Ctxt, args: &WorkerArgs, t: &Task<'_>) -> bool {
    let before = cx.error_count();
    check_sync_workers(cx, args);
    check_receiver(cx, t);
    check_generics(cx, t);
    check_unsafe(cx, t);
    for arg in &t.args {
        check_crossing(cx, arg.ty, false);
        check_names(cx, args, t, arg.ty);
    }
    if let ReturnType::Type(_, ty) = t.output() {
        check_crossing(cx, ty, true);
        check_names(cx, args, t, ty);
    }
    let ok = cx.error_count() == before;
    // Not a reason to leave the module out: with it, the callers still type-check.
    crate::worker::validate::check_process_needs_remote(cx, args, "task");
    ok
}

/// `mode = "sync"` runs calls in-line on one worker.
fn check_sync_workers(cx: &mut Ctxt, args: &WorkerArgs) {
    if let (Some((ModeArg::Sync, _)), Some((n, span))) = (args.mode, args.max_workers)
        && n > 1
    {
        cx.syn_error(syn::Error::new(
            span,
            format!(
                "`max_workers = {n}` needs `mode = \"thread\"` or `mode = \"async\"`; sync mode runs calls in-line on exactly one worker"
            ),
        ));
    }
}

/// The module `#[task]` adds beside the function reaches it through `super::`, which from a
/// module declared in a block (a function body) is the enclosing module, not the block.
/// Reported at the function's name; the module is still generated.
pub(crate) fn in_a_block(cx: &mut Ctxt, f: &syn::ItemFn) {
    let name = &f.sig.ident;
    cx.error_spanned_by(
        name,
        format!(
            "`#[task]` functions must be declared at module level, not inside a function body or block: `#[task]` adds a module `{name}` beside the function, and a module declared in a block cannot see the block's items; move `fn {name}` out of the enclosing function (to the top of the file or into a `mod`)"
        ),
    );
}

fn check_receiver(cx: &mut Ctxt, t: &Task<'_>) {
    if let Some(r) = t.receiver {
        cx.error_spanned_by(
            r,
            "`#[task]` goes on a free function, which has no `self`; for methods put `#[worker]` on the `impl` block",
        );
    }
}

fn check_generics(cx: &mut Ctxt, t: &Task<'_>) {
    let g = &t.item.sig.generics;
    let name = t.ident();
    if !g.params.is_empty() {
        cx.error_spanned_by(
            &g.params,
            format!(
                "`#[task]` functions cannot be generic (each call travels to a pool built for one signature); put `#[task]` on a concrete wrapper like `fn {name}_u64(x: u64) -> .. {{ {name}(x) }}`"
            ),
        );
    } else if let Some(wc) = &g.where_clause {
        cx.error_spanned_by(
            wc,
            "`#[task]` functions cannot have a `where` clause; put `#[task]` on a concrete function",
        );
    }
}

fn check_unsafe(cx: &mut Ctxt, t: &Task<'_>) {
    if let Some(u) = &t.item.sig.unsafety {
        cx.error_spanned_by(
            u,
            "`#[task]` functions cannot be `unsafe`; wrap the unsafe call in a safe function and put `#[task]` on that",
        );
    }
    if let Some(abi) = &t.item.sig.abi {
        cx.error_spanned_by(
            abi,
            "`#[task]` functions cannot have an `extern` ABI; put `#[task]` on a plain Rust wrapper",
        );
    }
    if let Some(v) = &t.item.sig.variadic {
        cx.error_spanned_by(v, "`#[task]` functions cannot be variadic");
    }
}

/// References and `impl Trait` cannot travel to a worker.
fn check_crossing(cx: &mut Ctxt, ty: &Type, is_return: bool) {
    let mut finder = Finder::default();
    finder.visit_type(ty);
    for r in finder.references {
        let suggestion = owned_suggestion(r);
        let written = pretty(&r.to_token_stream());
        let message = if is_return {
            format!(
                "references cannot cross a worker boundary; return an owned value (`{suggestion}`) instead of `{written}`"
            )
        } else {
            format!(
                "references cannot cross a worker boundary; take `{suggestion}` instead of `{written}`"
            )
        };
        cx.error_spanned_by(r, message);
    }
    for i in finder.impl_traits {
        let message = if is_return && is_impl_future(i) {
            "`impl Future` cannot be run by `#[task]`; write an `async fn` instead"
        } else {
            "`impl Trait` cannot cross a worker boundary; use a concrete type"
        };
        cx.error_spanned_by(i, message);
    }
}

fn is_impl_future(i: &syn::TypeImplTrait) -> bool {
    i.bounds.iter().any(|b| match b {
        syn::TypeParamBound::Trait(t) => {
            t.path.segments.last().is_some_and(|s| s.ident == "Future")
        }
        _ => false,
    })
}

/// The signature's types are spelled again inside the companion module `name`, where `self::`
/// and `super::` mean something else and `Handle` / `Options` (and `Task` with `remote`) are
/// the module's own types.
fn check_names(cx: &mut Ctxt, args: &WorkerArgs, t: &Task<'_>, ty: &Type) {
    let remote = args.remote.is_some();
    struct Paths<'ast>(Vec<&'ast syn::Path>);
    impl<'ast> Visit<'ast> for Paths<'ast> {
        fn visit_path(&mut self, p: &'ast syn::Path) {
            self.0.push(p);
            syn::visit::visit_path(self, p);
        }
    }
    let name = t.ident();
    let mut paths = Paths(Vec::new());
    paths.visit_type(ty);
    for p in paths.0 {
        let Some(first) = p.segments.first() else {
            continue;
        };
        if p.leading_colon.is_some() {
            continue;
        }
        if first.ident == "self" || first.ident == "super" {
            cx.error_spanned_by(
                &first.ident,
                format!(
                    "`#[task]` spells this type again inside the generated module `{name}`, where `{}` means another module; write the path from the crate root (`crate::..`)",
                    first.ident
                ),
            );
        } else if p.segments.len() == 1
            && (MODULE_TYPES.iter().any(|m| first.ident == m)
                || (remote && REMOTE_MODULE_TYPES.iter().any(|m| first.ident == m)))
        {
            cx.error_spanned_by(
                &first.ident,
                format!(
                    "`{0}` would mean the generated `{name}::{0}` inside the module `#[task]` generates; write its full path (`crate::..::{0}`) or rename the type",
                    first.ident
                ),
            );
        }
    }
}
