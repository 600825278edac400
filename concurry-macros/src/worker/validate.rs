//! The rules a `#[worker] impl` block must follow, one function per rule. Each reports at the
//! offending token and says the fix.

use quote::ToTokens;
use syn::visit::Visit;
use syn::{ImplItem, ReturnType, Type};

use super::args::{ModeArg, WorkerArgs};
use super::model::{Arg, Method, ReceiverKind, Worker};
use super::retry::{self, RetryAttr};
use crate::ctxt::Ctxt;

/// Names the expansion generates on the handle; a user method of the same name would be
/// shadowed or clash.
pub(crate) const HANDLE_METHODS: &[&str] = &["stop", "stats", "is_stopped", "blocking", "clone"];

/// Names the expansion adds to the user's type.
pub(crate) const TYPE_FNS: &[&str] = &["options"];

/// What the rules found.
pub(crate) struct Verdict {
    /// No error outside of single methods: the expansion can go ahead.
    pub(crate) block_ok: bool,
    /// Per exposed method (same order as `Worker::methods`): whether it passed its rules.
    pub(crate) method_ok: Vec<bool>,
    /// Per exposed method: its `#[retry(..)]` settings.
    pub(crate) retry: Vec<RetryAttr>,
}

/// Runs every rule.
pub(crate) fn check(cx: &mut Ctxt, w: &Worker<'_>) -> Verdict {
    let before = cx.error_count();
    check_inherent_impl(cx, w);
    check_self_type(cx, w);
    if cx.error_count() != before {
        // Not a block `#[worker]` can work with: the other rules would only add noise.
        return Verdict {
            block_ok: false,
            method_ok: Vec::new(),
            retry: Vec::new(),
        };
    }
    check_inner_worker_attrs(cx, w);
    check_constructor(cx, w);
    check_type_fn_collisions(cx, w);
    check_retry_placement(cx, w);
    let block_ok = cx.error_count() == before;
    let method_ok = w
        .methods
        .iter()
        .map(|m| {
            let before = cx.error_count();
            check_receiver(cx, m);
            check_method_generics(cx, m);
            for arg in &m.args {
                check_arg(cx, arg);
            }
            check_return(cx, m);
            check_handle_collision(cx, w, m);
            cx.error_count() == before
        })
        .collect();
    let retry = w
        .methods
        .iter()
        .map(|m| retry::parse(cx, m.original))
        .collect();
    Verdict {
        block_ok,
        method_ok,
        retry,
    }
}

/// `#[retry]` only means something on a method that becomes a call.
fn check_retry_placement(cx: &mut Ctxt, w: &Worker<'_>) {
    for f in &w.all_fns {
        if w.methods.iter().any(|m| std::ptr::eq(m.original, *f)) {
            continue;
        }
        if let Some(attr) = f.attrs.iter().find(|a| retry::is_retry_attr(a)) {
            cx.error_spanned_by(
                attr,
                format!(
                    "`#[retry]` applies to worker methods (`pub` with `&self` or `&mut self`); `{}` is not one, so remove the attribute",
                    f.sig.ident
                ),
            );
        }
    }
}

fn check_inherent_impl(cx: &mut Ctxt, w: &Worker<'_>) {
    if let Some((_, path, _)) = &w.item.trait_ {
        let ty = w.item.self_ty.to_token_stream();
        cx.error_spanned_by(
            path,
            format!(
                "`#[worker]` goes on an inherent impl block, not a trait impl; write `#[worker] impl {ty} {{ .. }}` with the methods to expose"
            ),
        );
    }
}

fn check_self_type(cx: &mut Ctxt, w: &Worker<'_>) {
    if w.ident.is_none() {
        cx.error_spanned_by(
            &w.item.self_ty,
            "`#[worker]` needs a plain type path here, like `impl Echo` or `impl Cache<K, V>`; put the methods on the type itself",
        );
    }
}

/// `#[worker(remote)]` registers the type by name for child processes, so it must be one
/// concrete type (reported at the impl's generics); and it generates `Type::lookup`, so the
/// impl has no fn of that name.
pub(crate) fn check_remote_generics(
    cx: &mut Ctxt,
    w: &Worker<'_>,
    remote: Option<proc_macro2::Span>,
) -> bool {
    if remote.is_none() {
        return true;
    }
    let mut ok = true;
    if let Some(ident) = w.ident {
        for f in w.all_fns.iter().filter(|f| f.sig.ident == "lookup") {
            cx.error_spanned_by(
                &f.sig.ident,
                format!(
                    "`lookup` collides with the generated `{ident}::lookup(&cluster, name)` that \
                     finds a named cluster pool of a `#[worker(remote)]` type; rename it"
                ),
            );
            ok = false;
        }
    }
    if w.item.generics.params.is_empty() {
        return ok;
    }
    cx.error_spanned_by(
        &w.item.generics,
        "`#[worker(remote)]` needs a concrete type (a child process looks the type up by name); remove the generic parameters, or drop `remote` and use `Mode::Thread`",
    );
    false
}

/// `mode = "process"` runs the workers in child processes, which only a `remote` type or
/// function can (its calls travel as serde messages). Reported at the mode's value; the
/// expansion goes ahead, so the rest of the program still type-checks.
pub(crate) fn check_process_needs_remote(cx: &mut Ctxt, args: &WorkerArgs, on: &str) {
    if let Some((ModeArg::Process, span)) = args.mode
        && args.remote.is_none()
    {
        let (attr, serde) = match on {
            "task" => (
                "#[task(remote, mode = \"process\")]",
                "its argument and return types",
            ),
            _ => (
                "#[worker(remote, mode = \"process\")]",
                "the constructor's and methods' argument and return types",
            ),
        };
        cx.syn_error(syn::Error::new(
            span,
            format!(
                "`mode = \"process\"` runs every worker in a child process, which needs `remote`; write `{attr}` ({serde} must then be serde types), or use `mode = \"thread\"`"
            ),
        ));
    }
}

/// A type has one `#[worker]` block: it generates one handle, one builder and one `Worker`
/// impl. Reported at the self type of every block after the first.
pub(crate) fn second_block(cx: &mut Ctxt, item: &syn::ItemImpl) {
    let ty = pretty(&item.self_ty.to_token_stream());
    cx.error_spanned_by(
        &item.self_ty,
        format!(
            "`{ty}` already has a `#[worker]` impl block in this module, and a type has only one (it generates one `{ty}Handle`, one `{ty}::options()` and one `Worker` impl); move these methods into the first `#[worker] impl {ty}` block, or remove `#[worker]` here to keep them as plain methods that the handle does not expose"
        ),
    );
}

fn is_worker_attr(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "worker")
}

fn check_inner_worker_attrs(cx: &mut Ctxt, w: &Worker<'_>) {
    for item in &w.item.items {
        let attrs = match item {
            ImplItem::Fn(f) => &f.attrs,
            ImplItem::Const(c) => &c.attrs,
            ImplItem::Type(t) => &t.attrs,
            _ => continue,
        };
        for attr in attrs.iter().filter(|a| is_worker_attr(a)) {
            cx.error_spanned_by(
                attr,
                "`#[worker]` goes on the `impl` block only, and already covers every `pub` method in it; remove this attribute",
            );
        }
    }
}

fn check_constructor(cx: &mut Ctxt, w: &Worker<'_>) {
    let Some(c) = &w.constructor else {
        cx.error_spanned_by(
            &w.item.self_ty,
            "`#[worker]` needs a constructor `pub fn new(..) -> Self` (or `-> Result<Self, E>`) in this impl block; `init(..)` calls it in every worker",
        );
        return;
    };
    if let Some(r) = c.receiver {
        cx.error_spanned_by(
            r,
            "the constructor `new` must not take `self`; write `pub fn new(..) -> Self` (`init(..)` calls it to build each worker)",
        );
    }
    if let Some(a) = &c.original.sig.asyncness {
        cx.error_spanned_by(
            a,
            "the constructor `new` cannot be `async`; make it a plain `fn new(..) -> Self` (each worker calls it before running calls)",
        );
    }
    if !c.original.sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &c.original.sig.generics,
            "the constructor `new` cannot be generic; move the type parameter to the impl block",
        );
    }
    let ok = match c.output() {
        ReturnType::Default => false,
        ReturnType::Type(_, ty) => is_self(ty, w) || result_of_self(ty, w),
    };
    if !ok {
        let tokens: &dyn ToTokens = match c.output() {
            ReturnType::Default => &c.original.sig.ident,
            ReturnType::Type(_, ty) => ty,
        };
        cx.error_spanned_by(
            tokens,
            "the constructor `new` must return `Self` or `Result<Self, E>`; `init(..)` uses what it returns as each worker's instance",
        );
    }
    for arg in &c.args {
        check_arg(cx, arg);
    }
}

/// `Self`, or the user's type written out.
pub(crate) fn is_self(ty: &Type, w: &Worker<'_>) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => {
            p.path.is_ident("Self")
                || (p.path.segments.len() == 1 && Some(&p.path.segments[0].ident) == w.ident)
        }
        Type::Paren(p) => is_self(&p.elem, w),
        Type::Group(g) => is_self(&g.elem, w),
        _ => false,
    }
}

/// `Result<Self, E>` (any path whose last segment is `Result`).
pub(crate) fn result_of_self(ty: &Type, w: &Worker<'_>) -> bool {
    let Type::Path(p) = ty else { return false };
    let Some(last) = p.path.segments.last() else {
        return false;
    };
    if last.ident != "Result" {
        return false;
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(a) => match a.args.first() {
            Some(syn::GenericArgument::Type(t)) => is_self(t, w),
            _ => false,
        },
        _ => false,
    }
}

fn check_receiver(cx: &mut Ctxt, m: &Method<'_>) {
    if m.receiver_kind == ReceiverKind::ByValue {
        cx.error_spanned_by(
            m.receiver,
            "worker methods must take `&self` or `&mut self`; `self` by value would consume the worker",
        );
    }
}

fn check_method_generics(cx: &mut Ctxt, m: &Method<'_>) {
    let g = &m.original.sig.generics;
    if !g.params.is_empty() {
        cx.error_spanned_by(
            &g.params,
            "worker methods cannot be generic; move the type parameter to the impl block",
        );
    } else if let Some(wc) = &g.where_clause {
        cx.error_spanned_by(
            wc,
            "worker methods cannot have a `where` clause; move the bounds to the impl block",
        );
    }
}

fn check_arg(cx: &mut Ctxt, arg: &Arg<'_>) {
    let mut finder = Finder::default();
    finder.visit_type(arg.ty);
    for r in finder.references {
        let suggestion = owned_suggestion(r);
        let written = pretty(&r.to_token_stream());
        cx.error_spanned_by(
            r,
            format!(
                "references cannot cross a worker boundary; take `{suggestion}` instead of `{written}`"
            ),
        );
    }
    for t in finder.impl_traits {
        cx.error_spanned_by(
            t,
            "`impl Trait` cannot cross a worker boundary; use a concrete type or a generic on the impl block",
        );
    }
}

fn check_return(cx: &mut Ctxt, m: &Method<'_>) {
    let ReturnType::Type(_, ty) = m.output() else {
        return;
    };
    let mut finder = Finder::default();
    finder.visit_type(ty);
    for r in finder.references {
        let suggestion = owned_suggestion(r);
        let written = pretty(&r.to_token_stream());
        cx.error_spanned_by(
            r,
            format!(
                "references cannot cross a worker boundary; return an owned value (`{suggestion}`) instead of `{written}`"
            ),
        );
    }
    for t in finder.impl_traits {
        cx.error_spanned_by(
            t,
            "`impl Trait` cannot cross a worker boundary; use a concrete type or a generic on the impl block",
        );
    }
}

fn check_handle_collision(cx: &mut Ctxt, w: &Worker<'_>, m: &Method<'_>) {
    let Some(ident) = w.ident else { return };
    let name = m.ident().to_string();
    if HANDLE_METHODS.contains(&name.as_str()) {
        cx.error_spanned_by(
            m.ident(),
            format!(
                "method `{name}` collides with the generated `{ident}Handle::{name}`; rename it"
            ),
        );
    }
}

fn check_type_fn_collisions(cx: &mut Ctxt, w: &Worker<'_>) {
    let Some(ident) = w.ident else { return };
    for f in &w.all_fns {
        let name = f.sig.ident.to_string();
        if TYPE_FNS.contains(&name.as_str()) {
            cx.error_spanned_by(
                &f.sig.ident,
                format!("`{name}` collides with the generated `{ident}::{name}()` that builds the pool; rename it"),
            );
        }
    }
}

/// What to take instead of a reference: `String` for `&str`, `Vec<T>` for `&[T]`, `T` else.
pub(crate) fn owned_suggestion(r: &syn::TypeReference) -> String {
    match &*r.elem {
        Type::Path(p) if p.path.is_ident("str") => "String".into(),
        Type::Path(p) if p.path.is_ident("Path") => "PathBuf".into(),
        Type::Slice(s) => format!("Vec<{}>", s.elem.to_token_stream()),
        other => pretty(&other.to_token_stream()),
    }
}

/// Type tokens as a person writes them: `&str`, `Vec<u8>`, `std::path::Path`.
pub(crate) fn pretty(tokens: &proc_macro2::TokenStream) -> String {
    let s = tokens.to_string();
    let mut out = s
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace("& ", "&")
        .replace("[ ", "[")
        .replace(" ]", "]")
        .replace("( ", "(")
        .replace(" )", ")");
    if out.starts_with("::") && !s.starts_with("::") {
        out.insert(0, ' ');
    }
    out
}

/// Finds references (other than `&'static`) and `impl Trait` in a type, outside of `fn(..)`
/// signatures and `Fn(..)` bounds (whose references are higher-ranked and fine).
#[derive(Default)]
pub(crate) struct Finder<'ast> {
    pub(crate) references: Vec<&'ast syn::TypeReference>,
    pub(crate) impl_traits: Vec<&'ast syn::TypeImplTrait>,
}

impl<'ast> Visit<'ast> for Finder<'ast> {
    fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
        let is_static = r.lifetime.as_ref().is_some_and(|l| l.ident == "static");
        if !is_static {
            self.references.push(r);
            return;
        }
        syn::visit::visit_type_reference(self, r);
    }

    fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
        self.impl_traits.push(t);
    }

    fn visit_type_bare_fn(&mut self, _: &'ast syn::TypeBareFn) {}

    fn visit_parenthesized_generic_arguments(
        &mut self,
        _: &'ast syn::ParenthesizedGenericArguments,
    ) {
    }
}
