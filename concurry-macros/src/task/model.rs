//! The borrowing model of a `#[task]` function: its shape only. Rules live in `validate.rs`.

use proc_macro2::{Ident, Span};
use quote::format_ident;
use syn::{FnArg, ItemFn, Pat, ReturnType, Type};

/// A `#[task]` function.
pub(crate) struct Task<'a> {
    pub(crate) item: &'a ItemFn,
    pub(crate) is_async: bool,
    pub(crate) args: Vec<Arg<'a>>,
    /// `self` in any form (rejected).
    pub(crate) receiver: Option<&'a syn::Receiver>,
}

/// One argument.
pub(crate) struct Arg<'a> {
    pub(crate) ty: &'a Type,
    /// The name generated code binds it to: the user's identifier, or `argN` for a pattern.
    pub(crate) name: Ident,
}

impl<'a> Task<'a> {
    pub(crate) fn ident(&self) -> &'a Ident {
        &self.item.sig.ident
    }

    pub(crate) fn output(&self) -> &'a ReturnType {
        &self.item.sig.output
    }
}

/// Builds the model. Never fails: shapes the rules reject are kept for `validate.rs`.
pub(crate) fn from_ast(item: &ItemFn) -> Task<'_> {
    let mut receiver = None;
    let mut args = Vec::new();
    for (i, input) in item.sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(r) => receiver = Some(r),
            FnArg::Typed(t) => args.push(Arg {
                ty: &t.ty,
                name: match &*t.pat {
                    Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
                    _ => format_ident!("arg{}", i, span = Span::mixed_site()),
                },
            }),
        }
    }
    Task {
        item,
        is_async: item.sig.asyncness.is_some(),
        args,
        receiver,
    }
}
