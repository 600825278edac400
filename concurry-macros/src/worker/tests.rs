use proc_macro2::TokenStream;
use quote::quote;

fn errors_of(args: TokenStream, item: TokenStream) -> Vec<String> {
    crate::ctxt::compile_error_messages(&super::expand(args, item))
}

#[test]
fn diagnostics_are_actionable() {
    let errors = errors_of(
        quote!(workers = 4, mode = "fiber", max_workers = 0, name = 3),
        quote! {
            impl Echo {
                pub fn ping(self, x: &str, y: impl Clone) -> &str { x }
                pub fn pong<T>(&self, t: T) {}
                pub fn stop(&self) {}
                pub fn options() {}
            }
        },
    );
    assert!(errors.len() >= 9, "{errors:#?}");
    for e in &errors {
        assert!(e.contains(';'), "says the fix after `;`: {e}");
        assert!(
            e.starts_with(|c: char| !c.is_uppercase()),
            "starts lower-case: {e}"
        );
    }
    let all = errors.join("\n");
    for needle in [
        "`workers` is spelled `max_workers`",
        "unknown mode",
        "`max_workers` must be at least 1",
        "needs a constructor",
        "`self` by value would consume the worker",
        "take `String` instead of `&str`",
        "`impl Trait` cannot cross a worker boundary",
        "return an owned value",
        "cannot be generic",
        "collides with the generated `EchoHandle::stop`",
        "collides with the generated `Echo::options()`",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in {all}");
    }
}

#[test]
fn valid_input_expands_without_errors() {
    let out = super::expand(
        quote!(
            mode = "async",
            max_workers = 2,
            load_balancing = "rr",
            name = "e"
        ),
        quote! {
            impl Echo {
                pub fn new(n: u64) -> Self { Echo { n } }
                pub fn ping(&self, x: u64) -> u64 { x }
                pub async fn later(&mut self) -> Result<u64, String> { Ok(1) }
            }
        },
    )
    .to_string();
    assert!(!out.contains("compile_error"), "{out}");
    for needle in [
        "EchoHandle",
        "EchoBlocking",
        "EchoOptions",
        "submit_exclusive",
    ] {
        assert!(out.contains(needle), "{needle}");
    }
}

#[test]
fn duplicate_and_non_impl_inputs_are_reported() {
    let errors = errors_of(
        quote!(max_workers = 1, max_workers = 2),
        quote!(
            impl Echo {
                pub fn new() -> Self { Echo }
            }
        ),
    );
    assert_eq!(errors, ["duplicate `max_workers` option; set it once"]);
    let errors = errors_of(
        quote!(),
        quote!(
            struct Echo;
        ),
    );
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("not on the struct"));
}

#[test]
fn generated_stop_docs_name_the_error_it_returns() {
    let out = super::expand(
        quote!(),
        quote! {
            impl Echo {
                pub fn new() -> Self { Echo }
            }
        },
    )
    .to_string();
    let stop = out
        .split("pub fn stop")
        .next()
        .and_then(|before| before.rsplit("pub fn").next())
        .expect("a stop method");
    assert!(stop.contains("`Error::StopTimeout`"), "{stop}");
    assert!(!stop.contains("joined cleanly"), "{stop}");
}

#[test]
fn process_mode_in_the_attribute_needs_remote() {
    let item = quote! {
        impl Echo {
            pub fn new() -> Self { Echo }
        }
    };
    let errors = errors_of(quote!(mode = "process"), item.clone());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("needs `remote`; write `#[worker(remote, mode = "),
        "{errors:?}"
    );
    let out = super::expand(quote!(remote, mode = "processes"), item).to_string();
    assert!(!out.contains("compile_error"), "{out}");
    assert!(out.contains("Mode :: Process"), "{out}");
}
