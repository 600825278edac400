use proc_macro2::TokenStream;
use quote::quote;

fn errors_of(args: TokenStream, item: TokenStream) -> Vec<String> {
    crate::ctxt::compile_error_messages(&super::expand(args, item))
}

#[test]
fn diagnostics_are_actionable() {
    let errors = errors_of(
        quote!(workers = 4, mode = "sync", max_workers = 3),
        quote! {
            unsafe fn fetch<T>(url: &str, it: impl Iterator<Item = u8>, h: Handle, s: super::S) -> &str { url }
        },
    );
    assert!(errors.len() >= 7, "{errors:#?}");
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
        "sync mode runs calls in-line",
        "cannot be generic",
        "cannot be `unsafe`",
        "take `String` instead of `&str`",
        "`impl Trait` cannot cross",
        "generated `fetch::Handle`",
        "where `super` means another module",
        "return an owned value",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in {all}");
    }
}

#[test]
fn the_function_is_always_emitted() {
    // Even with errors, the user's function is kept, so its callers still compile.
    let out = super::expand(
        quote!(mode = 3),
        quote!(
            fn keep(x: u8) -> u8 {
                x
            }
        ),
    )
    .to_string();
    assert!(out.contains("fn keep"), "{out}");
    assert!(out.contains("compile_error"), "{out}");
    // Without errors: the function, then the module of the same name.
    let out = super::expand(
        quote!(),
        quote!(
            pub fn keep(x: u8) -> u8 {
                x
            }
        ),
    )
    .to_string();
    assert!(out.starts_with("pub fn keep"), "{out}");
    assert!(out.contains("pub mod keep"), "{out}");
}

#[test]
fn other_items_are_refused_with_a_pointer_to_worker() {
    let errors = errors_of(quote!(), quote!(impl Echo { fn new() -> Self { Echo } }));
    assert!(errors[0].contains("use `#[worker]`"), "{errors:?}");
    let errors = errors_of(
        quote!(),
        quote!(
            pub fn ping(&self) -> u8 {
                1
            }
        ),
    );
    assert!(errors[0].contains("has no `self`"), "{errors:?}");
}

#[test]
fn remote_adds_a_registered_remote_task() {
    let item = quote!(
        pub fn square(x: u64) -> u64 {
            x * x
        }
    );
    let remote = super::expand(quote!(remote), item.clone()).to_string();
    assert!(!remote.contains("compile_error"), "{remote}");
    for needle in [
        "impl :: concurry :: RemoteTask for __RemoteTask",
        "register_remote_task ! (__RemoteTask)",
        "assert_remote_type :: < u64 >",
        "submit_remote_task",
        "init_task (self . 0 , :: core :: module_path ! () , true)",
        // Cluster mode: the public alias results are fetched by, and `submit_with`.
        "pub type Task = __RemoteTask",
        "pub fn submit_with (& self , x : u64 , submit : :: concurry :: __private :: TaskSubmit)",
        "submit_remote_task_with :: < __RemoteTask , u64 , :: core :: convert :: Infallible >",
    ] {
        assert!(remote.contains(needle), "missing {needle:?} in {remote}");
    }
    // Without `remote`: nothing of process or cluster mode, and `init` refuses them at run
    // time.
    let local = super::expand(quote!(), item).to_string();
    assert!(!local.contains("RemoteTask"), "{local}");
    assert!(!local.contains("submit_with"), "{local}");
    assert!(!local.contains("type Task"), "{local}");
    assert!(
        local.contains("init_task (self . 0 , :: core :: module_path ! () , false)"),
        "{local}"
    );
}

#[test]
fn process_mode_in_the_attribute_needs_remote() {
    let item = quote!(
        fn fetch(url: String) -> String {
            url
        }
    );
    let errors = errors_of(quote!(mode = "process"), item.clone());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("needs `remote`; write `#[task(remote, mode = "),
        "{errors:?}"
    );
    let out = super::expand(quote!(remote, mode = "process"), item).to_string();
    assert!(!out.contains("compile_error"), "{out}");
    assert!(out.contains("Mode :: Process"), "{out}");
}

#[test]
fn a_type_named_task_is_refused_only_with_remote() {
    let item = quote!(
        fn run(t: Task) -> Task {
            t
        }
    );
    let errors = errors_of(quote!(remote), item.clone());
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("`Task` would mean the generated `run::Task`"),
        "{errors:?}"
    );
    assert!(errors_of(quote!(), item).is_empty());
}
