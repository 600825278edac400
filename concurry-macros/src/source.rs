//! Rules that need the item's surroundings, which an attribute macro never sees: is the
//! `#[task]` function inside a function body, is this `#[worker]` block the second one of
//! its type? Answered from the source file the macro was called in (its text, read by the
//! entry point), found again there by its tokens.
//!
//! Every answer is conservative: no file (rust-analyzer, code built by another macro), a
//! file that does not parse, or an item not found in it means "no problem", and rustc's own
//! error, if any, stands.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::visit::Visit;
use syn::{Attribute, ItemFn, ItemImpl};

/// The item's tokens without any attribute or doc comment, one space apart: how an item
/// from the macro's input and the same item parsed from its file compare equal.
fn fingerprint(tokens: TokenStream) -> String {
    fn walk(tokens: TokenStream, out: &mut String) {
        let mut iter = tokens.into_iter().peekable();
        while let Some(tt) = iter.next() {
            match tt {
                TokenTree::Punct(p) if p.as_char() == '#' => {
                    // `#[..]` or `#![..]`: an attribute (doc comments included); skip it.
                    if matches!(iter.peek(), Some(TokenTree::Punct(b)) if b.as_char() == '!') {
                        iter.next();
                    }
                    if matches!(iter.peek(), Some(TokenTree::Group(g)) if g.delimiter() == proc_macro2::Delimiter::Bracket)
                    {
                        iter.next();
                    } else {
                        out.push_str("# ");
                    }
                }
                TokenTree::Group(g) => {
                    let (open, close) = match g.delimiter() {
                        proc_macro2::Delimiter::Parenthesis => ("( ", ") "),
                        proc_macro2::Delimiter::Brace => ("{ ", "} "),
                        proc_macro2::Delimiter::Bracket => ("[ ", "] "),
                        proc_macro2::Delimiter::None => ("", ""),
                    };
                    out.push_str(open);
                    walk(g.stream(), out);
                    out.push_str(close);
                }
                other => {
                    out.push_str(&other.to_string());
                    out.push(' ');
                }
            }
        }
    }
    let mut out = String::new();
    walk(tokens, &mut out);
    out
}

fn has_attr(attrs: &[Attribute], name: &str) -> bool {
    attrs
        .iter()
        .any(|a| a.path().segments.last().is_some_and(|s| s.ident == name))
}

/// Walks a file keeping track of scopes: each module and each block is one, and items see
/// the items of their own scope only.
#[derive(Default)]
struct Scopes {
    /// The scope ids from the file's root inwards; each entry also says whether it is a block
    /// (a function body, a `const` initialiser, ...) rather than a module.
    stack: Vec<(usize, bool)>,
    next: usize,
    /// `#[task]` functions: fingerprint, and whether they sit in a block.
    tasks: Vec<(String, bool)>,
    /// `#[worker]` blocks in source order: scope, self type, fingerprint, and whether a
    /// `cfg` may leave it out of the build.
    workers: Vec<(usize, String, String, bool)>,
}

impl Scopes {
    fn scoped(&mut self, block: bool, f: impl FnOnce(&mut Self)) {
        self.next += 1;
        self.stack.push((self.next, block));
        f(self);
        self.stack.pop();
    }

    fn current(&self) -> (usize, bool) {
        self.stack.last().copied().unwrap_or((0, false))
    }
}

impl<'ast> Visit<'ast> for Scopes {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.scoped(false, |s| syn::visit::visit_item_mod(s, m));
    }

    fn visit_block(&mut self, b: &'ast syn::Block) {
        self.scoped(true, |s| syn::visit::visit_block(s, b));
    }

    fn visit_item_fn(&mut self, f: &'ast ItemFn) {
        if has_attr(&f.attrs, "task") {
            let in_block = self.current().1;
            self.tasks
                .push((fingerprint(f.to_token_stream()), in_block));
        }
        syn::visit::visit_item_fn(self, f);
    }

    fn visit_item_impl(&mut self, i: &'ast ItemImpl) {
        // A trait impl under `#[worker]` is refused on its own; only inherent blocks count.
        if has_attr(&i.attrs, "worker") && i.trait_.is_none() {
            self.workers.push((
                self.current().0,
                fingerprint(i.self_ty.to_token_stream()),
                fingerprint(i.to_token_stream()),
                has_attr(&i.attrs, "cfg") || has_attr(&i.attrs, "cfg_attr"),
            ));
        }
        syn::visit::visit_item_impl(self, i);
    }
}

fn scan(source: &str) -> Option<Scopes> {
    let file = syn::parse_file(source).ok()?;
    let mut scopes = Scopes::default();
    scopes.visit_file(&file);
    Some(scopes)
}

/// True if the `#[task]` function `f` (as the macro got it) sits inside a block of `source`,
/// such as a function body, where the module `#[task]` adds beside it cannot see it.
pub(crate) fn task_is_in_a_block(source: Option<&str>, f: &ItemFn) -> bool {
    let Some(scopes) = source.and_then(scan) else {
        return false;
    };
    let me = fingerprint(f.to_token_stream());
    let mut found = scopes.tasks.iter().filter(|(fp, _)| *fp == me).peekable();
    // Every copy of it must be in a block: a twin at module level keeps us quiet.
    found.peek().is_some() && found.all(|(_, in_block)| *in_block)
}

/// True if `source` has an earlier `#[worker]` block for the same type in the same scope as
/// `i` (as the macro got it). A block under `cfg` does not count: it may be the alternative
/// of this one.
pub(crate) fn worker_block_is_not_the_first(source: Option<&str>, i: &ItemImpl) -> bool {
    let Some(scopes) = source.and_then(scan) else {
        return false;
    };
    let me = fingerprint(i.to_token_stream());
    let Some(at) = scopes.workers.iter().position(|(_, _, fp, _)| *fp == me) else {
        return false;
    };
    let (scope, ty, _, _) = &scopes.workers[at];
    scopes.workers[..at]
        .iter()
        .any(|(s, t, _, cfg)| s == scope && t == ty && !cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = r#"
        /// Docs do not matter.
        #[concurry::task]
        fn top(x: u64) -> u64 { x }

        fn main() {
            #[concurry::task(mode = "thread")]
            fn inner(x: u64) -> u64 { x }

            mod fine {
                #[concurry::task]
                fn in_a_module() {}
            }
        }

        pub struct Echo;
        #[concurry::worker]
        impl Echo { pub fn new() -> Self { Echo } }
        #[concurry::worker]
        impl Echo { pub fn second(&self) {} }

        mod other {
            pub struct Echo;
            #[concurry::worker]
            impl Echo { pub fn new() -> Self { Echo } }
        }

        pub trait Greet { fn hi(&self); }
        pub struct Greeter;
        #[concurry::worker]
        impl Greet for Greeter { fn hi(&self) {} }
        #[concurry::worker]
        impl Greeter { pub fn new() -> Self { Greeter } }

        pub struct Alt;
        #[cfg(unix)]
        #[concurry::worker]
        impl Alt { pub fn new() -> Self { Alt } }
        #[cfg(not(unix))]
        #[concurry::worker]
        impl Alt { pub fn new() -> Self { Alt } pub fn other(&self) {} }

        fn test_a() {
            struct Probe;
            #[concurry::worker]
            impl Probe { pub fn new() -> Self { Probe } }
        }
        fn test_b() {
            struct Probe;
            #[concurry::worker]
            impl Probe { pub fn new() -> Self { Probe } pub fn b(&self) {} }
        }
    "#;

    fn task(tokens: TokenStream) -> bool {
        task_is_in_a_block(Some(SOURCE), &syn::parse2(tokens).unwrap())
    }

    fn worker(tokens: TokenStream) -> bool {
        worker_block_is_not_the_first(Some(SOURCE), &syn::parse2(tokens).unwrap())
    }

    #[test]
    fn a_task_in_a_function_body_is_found() {
        assert!(task(quote::quote!(
            fn inner(x: u64) -> u64 {
                x
            }
        )));
        assert!(!task(quote::quote!(
            fn top(x: u64) -> u64 {
                x
            }
        )));
        assert!(!task(quote::quote!(
            fn in_a_module() {}
        )));
        // Not in the file (built by another macro): no opinion.
        assert!(!task(quote::quote!(
            fn elsewhere() {}
        )));
        assert!(!task_is_in_a_block(
            None,
            &syn::parse2(quote::quote!(
                fn inner(x: u64) -> u64 {
                    x
                }
            ))
            .unwrap()
        ));
    }

    #[test]
    fn a_second_worker_block_of_one_type_in_one_scope_is_found() {
        assert!(worker(quote::quote!(impl Echo { pub fn second(&self) {} })));
        assert!(!worker(
            quote::quote!(impl Echo { pub fn new() -> Self { Echo } })
        ));
        // A trait impl is not a second block.
        assert!(!worker(
            quote::quote!(impl Greeter { pub fn new() -> Self { Greeter } })
        ));
        // Blocks under `cfg` may be alternatives.
        assert!(!worker(
            quote::quote!(impl Alt { pub fn new() -> Self { Alt } pub fn other(&self) {} })
        ));
        // Same names in other scopes are other types.
        assert!(!worker(
            quote::quote!(impl Probe { pub fn new() -> Self { Probe } pub fn b(&self) {} })
        ));
    }
}
