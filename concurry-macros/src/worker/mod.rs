//! `#[worker]`: parse the arguments (`args`), model the impl block (`model`), check the rules
//! (`validate`), generate the glue (`expand`).

pub(crate) mod args;
pub(crate) mod expand;
mod model;
pub(crate) mod retry;
pub(crate) mod validate;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{ImplItem, Item};

use crate::ctxt::Ctxt;
use crate::fallback;

/// Expands `#[worker(args)] item` without looking at its file (unit tests).
#[cfg(test)]
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_in(args, item, None)
}

/// Expands `#[worker(args)] item`, found in the file whose text is `source`. Never panics:
/// every problem becomes a `compile_error!` next to the user's item.
pub(crate) fn expand_in(args: TokenStream, item: TokenStream, source: Option<&str>) -> TokenStream {
    let mut cx = Ctxt::default();
    let parsed_args = match args::parse(&mut cx, args) {
        Ok(a) => a,
        Err(e) => {
            cx.syn_error(e);
            args::WorkerArgs::default()
        }
    };
    let mut item_impl = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Impl(i)) => i,
        Ok(other) => {
            cx.error_spanned_by(not_an_impl_token(&other), not_an_impl_message(&other));
            return fallback::item_with_errors(item, cx.to_compile_errors());
        }
        Err(e) => {
            cx.syn_error(e);
            return fallback::item_with_errors(item, cx.to_compile_errors());
        }
    };

    if crate::source::worker_block_is_not_the_first(source, &item_impl) {
        validate::second_block(&mut cx, &item_impl);
        strip_inert_attrs(&mut item_impl);
        return fallback::item_with_errors(item_impl.into_token_stream(), cx.to_compile_errors());
    }
    let generated = {
        let w = model::from_ast(&item_impl);
        let verdict = validate::check(&mut cx, &w);
        validate::check_process_needs_remote(&mut cx, &parsed_args, "worker");
        let remote = parsed_args.remote.is_some()
            && validate::check_remote_generics(&mut cx, &w, parsed_args.remote.map(|(_, s)| s));
        match w.ident {
            Some(ident) if verdict.block_ok => {
                let parts = expand::Parts {
                    method_ok: &verdict.method_ok,
                    retry: &verdict.retry,
                    remote,
                };
                expand::expand(&parsed_args, &w, ident, &parts)
            }
            _ => TokenStream::new(),
        }
    };
    strip_inert_attrs(&mut item_impl);
    let errors = cx.to_compile_errors();
    let mut out = item_impl.into_token_stream();
    out.extend(generated);
    out.extend(errors);
    out
}

/// Removes the attributes `#[worker]` consumes (`#[retry]`) or rejects inside the block (a
/// nested `#[worker]`), so they don't cause a second round of errors.
fn strip_inert_attrs(item: &mut syn::ItemImpl) {
    for impl_item in &mut item.items {
        if let ImplItem::Fn(f) = impl_item {
            f.attrs.retain(|a| {
                a.path()
                    .segments
                    .last()
                    .is_none_or(|s| s.ident != "worker" && s.ident != retry::ATTR)
            });
        }
    }
}

fn not_an_impl_token(item: &Item) -> TokenStream {
    match item {
        Item::Struct(s) => s.struct_token.into_token_stream(),
        Item::Enum(e) => e.enum_token.into_token_stream(),
        Item::Fn(f) => f.sig.fn_token.into_token_stream(),
        Item::Trait(t) => t.trait_token.into_token_stream(),
        Item::Mod(m) => m.mod_token.into_token_stream(),
        other => other.into_token_stream(),
    }
}

fn not_an_impl_message(item: &Item) -> String {
    match item {
        Item::Struct(s) => format!(
            "`#[worker]` goes on the inherent impl block, not on the struct; write `#[worker] impl {} {{ pub fn new(..) -> Self {{ .. }} .. }}`",
            s.ident
        ),
        Item::Enum(e) => format!(
            "`#[worker]` goes on the inherent impl block, not on the enum; write `#[worker] impl {} {{ pub fn new(..) -> Self {{ .. }} .. }}`",
            e.ident
        ),
        Item::Fn(_) => "`#[worker]` goes on an inherent impl block, not on a function; put the function in `#[worker] impl MyType { .. }` as a method".into(),
        Item::Trait(_) => "`#[worker]` goes on an inherent impl block, not on a trait; write `#[worker] impl MyType { .. }`".into(),
        _ => "`#[worker]` goes on an inherent impl block: `#[worker] impl MyType { pub fn new(..) -> Self { .. } .. }`".into(),
    }
}

#[cfg(test)]
mod tests;
