//! `#[task]`: parse the arguments (shared with `#[worker]`), model the function (`model`),
//! check the rules (`validate`), generate the companion module (`expand`).

mod expand;
mod model;
mod validate;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::Item;

use crate::ctxt::Ctxt;
use crate::fallback;
use crate::worker::args::{self, WorkerArgs};
use crate::worker::retry;

/// Expands `#[task(args)] item` without looking at its file (unit tests).
#[cfg(test)]
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_in(args, item, None)
}

/// Expands `#[task(args)] item`, found in the file whose text is `source`. Never panics:
/// every problem becomes a `compile_error!` next to the user's function.
pub(crate) fn expand_in(args: TokenStream, item: TokenStream, source: Option<&str>) -> TokenStream {
    let mut cx = Ctxt::default();
    let parsed_args = match args::parse(&mut cx, args) {
        Ok(a) => a,
        Err(e) => {
            let message = e.to_string().replace("#[worker(", "#[task(");
            cx.syn_error(syn::Error::new(e.span(), message));
            WorkerArgs::default()
        }
    };
    let mut item_fn = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(f)) => f,
        Ok(other) => {
            cx.error_spanned_by(not_a_fn_token(&other), not_a_fn_message(&other));
            return fallback::item_with_errors(item, cx.to_compile_errors());
        }
        Err(e) => {
            cx.syn_error(e);
            return fallback::item_with_errors(item, cx.to_compile_errors());
        }
    };
    if crate::source::task_is_in_a_block(source, &item_fn) {
        validate::in_a_block(&mut cx, &item_fn);
    }
    // `#[retry(..)]` under `#[task]` is an inert attribute read here and removed.
    let retry = retry::parse_attrs(&mut cx, &item_fn.attrs, "`#[task]`");
    let generated = {
        let task = model::from_ast(&item_fn);
        if validate::check(&mut cx, &parsed_args, &task) {
            expand::expand(&parsed_args, &task, &retry)
        } else {
            TokenStream::new()
        }
    };
    item_fn.attrs.retain(|a| !retry::is_retry_attr(a));
    let mut out = item_fn.to_token_stream();
    out.extend(generated);
    out.extend(cx.to_compile_errors());
    out
}

fn not_a_fn_token(item: &Item) -> TokenStream {
    match item {
        Item::Struct(s) => s.struct_token.into_token_stream(),
        Item::Enum(e) => e.enum_token.into_token_stream(),
        Item::Impl(i) => i.impl_token.into_token_stream(),
        Item::Trait(t) => t.trait_token.into_token_stream(),
        Item::Mod(m) => m.mod_token.into_token_stream(),
        other => other.into_token_stream(),
    }
}

fn not_a_fn_message(item: &Item) -> &'static str {
    match item {
        Item::Impl(_) => "`#[task]` goes on a free function; for an `impl` block use `#[worker]`",
        Item::Struct(_) | Item::Enum(_) => {
            "`#[task]` goes on a free function; for a type use `#[worker]` on its `impl` block"
        }
        _ => "`#[task]` goes on a free function: `#[task] fn fetch(url: String) -> String { .. }`",
    }
}

#[cfg(test)]
mod tests;
