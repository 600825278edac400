//! What to emit when the input has errors: the user's item unchanged (so their own code still
//! type-checks and callers of it don't cascade) plus every error as `compile_error!`.

use proc_macro2::TokenStream;
use quote::quote;

/// The user's item (inert attributes already stripped) followed by the errors.
pub(crate) fn item_with_errors(item: TokenStream, errors: TokenStream) -> TokenStream {
    quote! {
        #item
        #errors
    }
}
