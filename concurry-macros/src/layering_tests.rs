//! Import check: no expansion emits `Mode::` for its own use. Generated code asks the pool
//! (`__private::pool_is_remote`) instead of comparing modes, so a new mode needs no change
//! here. The one `Mode::` an expansion may hold is the default a `mode = ..` argument
//! writes into `options()`: the user's own choice, spelled as the user would.

use proc_macro2::TokenStream;
use quote::quote;

/// Every `Mode ::` in `out`, with the tokens just before it.
fn modes_named(out: &TokenStream) -> Vec<String> {
    let text = out.to_string();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("Mode ::") {
        let at = from + at;
        let before = text[..at].chars().rev().take(40).collect::<String>();
        found.push(before.chars().rev().collect());
        from = at + 1;
    }
    found
}

fn worker(args: TokenStream) -> TokenStream {
    let out = crate::worker::expand(
        args,
        quote! {
            impl Echo {
                pub fn new(n: u64) -> Self { Echo { n } }
                pub fn ping(&self, x: u64) -> u64 { x }
                pub async fn later(&mut self) -> Result<u64, String> { Ok(1) }
                pub async fn shared(&self, x: u64) -> u64 { x }
            }
        },
    );
    assert!(!out.to_string().contains("compile_error"), "{out}");
    out
}

fn task(args: TokenStream) -> TokenStream {
    let out = crate::task::expand(args, quote! { fn square(x: u64) -> u64 { x * x } });
    assert!(!out.to_string().contains("compile_error"), "{out}");
    out
}

#[test]
fn expansions_never_name_a_mode() {
    for out in [
        worker(quote!()),
        worker(quote!(remote)),
        worker(quote!(remote, max_workers = 2, load_balancing = "rr")),
        task(quote!()),
        task(quote!(remote)),
    ] {
        let found = modes_named(&out);
        assert!(found.is_empty(), "an expansion names `Mode::`: {found:?}");
    }
}

#[test]
fn a_mode_argument_is_only_the_options_default() {
    for out in [
        worker(quote!(remote, mode = "process")),
        worker(quote!(mode = "thread")),
        task(quote!(remote, mode = "process")),
    ] {
        let found = modes_named(&out);
        assert!(!found.is_empty(), "the default is written: {out}");
        for before in &found {
            assert!(
                before.trim_end().ends_with(". mode (:: concurry ::"),
                "`Mode::` outside the `mode` option's default: ...{before}"
            );
        }
    }
}
