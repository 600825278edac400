//! The borrowing model of a `#[worker] impl` block: its shape only. Rules live in
//! `validate.rs`.

use proc_macro2::{Ident, Span};
use quote::format_ident;
use syn::{FnArg, ImplItem, ImplItemFn, ItemImpl, Pat, ReturnType, Type, Visibility};

/// The name of the function `init(..)` calls in every worker.
pub(crate) const CONSTRUCTOR: &str = "new";

/// A `#[worker] impl` block.
pub(crate) struct Worker<'a> {
    pub(crate) item: &'a ItemImpl,
    /// The user's type name (`Echo` in `impl Echo`), if the self type is a plain path.
    pub(crate) ident: Option<&'a Ident>,
    /// `fn new(..)` without a receiver, if any.
    pub(crate) constructor: Option<Constructor<'a>>,
    /// Every `pub` method with a receiver: these become calls on the handle.
    pub(crate) methods: Vec<Method<'a>>,
    /// Every function of the block (for name collisions).
    pub(crate) all_fns: Vec<&'a ImplItemFn>,
}

/// The constructor.
pub(crate) struct Constructor<'a> {
    pub(crate) original: &'a ImplItemFn,
    pub(crate) receiver: Option<&'a syn::Receiver>,
    pub(crate) args: Vec<Arg<'a>>,
}

/// How a method takes `self`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReceiverKind {
    /// `&self`
    Shared,
    /// `&mut self`
    Exclusive,
    /// `self`, `mut self`, `self: Box<Self>`, …
    ByValue,
}

/// A method exposed on the handle.
pub(crate) struct Method<'a> {
    pub(crate) original: &'a ImplItemFn,
    pub(crate) receiver: &'a syn::Receiver,
    pub(crate) receiver_kind: ReceiverKind,
    pub(crate) is_async: bool,
    pub(crate) args: Vec<Arg<'a>>,
}

/// One argument after the receiver.
pub(crate) struct Arg<'a> {
    pub(crate) ty: &'a Type,
    /// The name the generated code binds it to: the user's identifier, or `argN` for a
    /// pattern.
    pub(crate) name: Ident,
}

impl<'a> Method<'a> {
    pub(crate) fn ident(&self) -> &'a Ident {
        &self.original.sig.ident
    }

    pub(crate) fn output(&self) -> &'a ReturnType {
        &self.original.sig.output
    }
}

impl<'a> Constructor<'a> {
    pub(crate) fn output(&self) -> &'a ReturnType {
        &self.original.sig.output
    }
}

/// Builds the model. Never fails: shapes the rules reject are kept for `validate.rs`.
pub(crate) fn from_ast(item: &ItemImpl) -> Worker<'_> {
    let ident = match &*item.self_ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| &s.ident),
        _ => None,
    };
    let mut constructor = None;
    let mut methods = Vec::new();
    let mut all_fns = Vec::new();
    for impl_item in &item.items {
        let ImplItem::Fn(f) = impl_item else { continue };
        all_fns.push(f);
        let receiver = f.sig.receiver();
        if receiver.is_none() && f.sig.ident == CONSTRUCTOR {
            if constructor.is_none() {
                constructor = Some(Constructor {
                    original: f,
                    receiver: None,
                    args: args_of(f),
                });
            }
            continue;
        }
        if let Some(r) = receiver {
            if f.sig.ident == CONSTRUCTOR && constructor.is_none() {
                constructor = Some(Constructor {
                    original: f,
                    receiver: Some(r),
                    args: args_of(f),
                });
                continue;
            }
            if matches!(f.vis, Visibility::Inherited) {
                continue;
            }
            methods.push(Method {
                original: f,
                receiver: r,
                receiver_kind: receiver_kind(r),
                is_async: f.sig.asyncness.is_some(),
                args: args_of(f),
            });
        }
    }
    Worker {
        item,
        ident,
        constructor,
        methods,
        all_fns,
    }
}

fn receiver_kind(r: &syn::Receiver) -> ReceiverKind {
    if r.reference.is_some() {
        return if r.mutability.is_some() {
            ReceiverKind::Exclusive
        } else {
            ReceiverKind::Shared
        };
    }
    // `self: &Self` / `self: &mut Self`
    match &*r.ty {
        Type::Reference(t) if r.colon_token.is_some() => {
            if t.mutability.is_some() {
                ReceiverKind::Exclusive
            } else {
                ReceiverKind::Shared
            }
        }
        _ => ReceiverKind::ByValue,
    }
}

fn args_of(f: &ImplItemFn) -> Vec<Arg<'_>> {
    f.sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .enumerate()
        .map(|(i, t)| Arg {
            ty: &t.ty,
            name: match &*t.pat {
                Pat::Ident(p) => p.ident.clone(),
                _ => format_ident!("arg{}", i, span = Span::mixed_site()),
            },
        })
        .collect()
}
