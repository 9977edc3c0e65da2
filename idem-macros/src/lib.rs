//! The `#[idempotent]` attribute macro. Use it through `idem::idempotent`.
//!
//! Work in progress (issue 3): not yet implemented.

use proc_macro::TokenStream;

/// Not yet implemented (issue 3): expands to the function unchanged plus a
/// compile error.
#[proc_macro_attribute]
pub fn idempotent(_args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    quote::quote! {
        ::core::compile_error!("#[idempotent] is not implemented yet");
        #item
    }
    .into()
}
