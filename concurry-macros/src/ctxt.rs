//! [`Ctxt`]: collects every recoverable error of one expansion, so one build shows them all.

use proc_macro2::TokenStream;
use quote::ToTokens;
use std::fmt::Display;

/// The errors found so far.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: Vec<syn::Error>,
}

impl Ctxt {
    /// Records an error spanned at `tokens`.
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&mut self, tokens: T, message: M) {
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an already built error.
    pub(crate) fn syn_error(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// How many errors were recorded so far.
    pub(crate) fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// All errors as `compile_error!` invocations.
    pub(crate) fn to_compile_errors(&self) -> TokenStream {
        self.errors
            .iter()
            .map(syn::Error::to_compile_error)
            .collect()
    }
}

/// The messages of the `compile_error!`s in an expansion (for the macros' unit tests).
#[cfg(test)]
pub(crate) fn compile_error_messages(expansion: &TokenStream) -> Vec<String> {
    expansion
        .to_string()
        .split("compile_error !")
        .skip(1)
        .map(|s| {
            let start = s.find('"').map_or(0, |i| i + 1);
            let end = s[start..].find("\" }").map_or(s.len(), |i| start + i);
            s[start..end].to_string()
        })
        .collect()
}
