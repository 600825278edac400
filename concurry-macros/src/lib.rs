//! Procedural macros of concurry.
use proc_macro::TokenStream;

/// Placeholder until the macro lands.
#[proc_macro_attribute]
pub fn worker(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
