//! Generating the worker glue from a validated model: the `Worker` impl, `{Type}Handle`,
//! `{Type}Blocking`, `{Type}Options` and `{Type}::options()`.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{GenericArgument, PathArguments, ReturnType, Type};

use super::args::WorkerArgs;
use super::model::{Method, ReceiverKind, Worker};
use super::retry::RetryAttr;
use super::validate::{is_self, result_of_self};

/// The names of the generated types.
pub(crate) struct Names {
    pub(crate) handle: Ident,
    pub(crate) blocking: Ident,
    pub(crate) options: Ident,
}

impl Names {
    pub(crate) fn new(ident: &Ident) -> Self {
        let span = ident.span();
        Names {
            handle: format_ident!("{}Handle", ident, span = span),
            blocking: format_ident!("{}Blocking", ident, span = span),
            options: format_ident!("{}Options", ident, span = span),
        }
    }
}

/// Replaces `Self` in a type with the user's type, for use outside the user's impl block.
struct ReplaceSelf<'a>(&'a Type);

impl VisitMut for ReplaceSelf<'_> {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(p) = ty
            && p.qself.is_none()
            && p.path.is_ident("Self")
        {
            *ty = self.0.clone();
            return;
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

/// The same tokens, every one spanned at `span` (so an error about them points there).
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tt = proc_macro2::TokenTree::Group(group);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

fn replace_self(ty: &Type, self_ty: &Type) -> Type {
    let mut ty = ty.clone();
    ReplaceSelf(self_ty).visit_type_mut(&mut ty);
    ty
}

/// The `T` and `E` of a method's promise.
struct PromiseTypes {
    ok: TokenStream,
    err: Option<TokenStream>,
}

fn promise_types(output: &ReturnType, self_ty: &Type, p: &TokenStream) -> PromiseTypes {
    let ReturnType::Type(_, ty) = output else {
        return PromiseTypes {
            ok: quote!(()),
            err: None,
        };
    };
    let ty = replace_self(ty, self_ty);
    let last = match &ty {
        Type::Path(tp) if tp.qself.is_none() => tp.path.segments.last(),
        _ => None,
    };
    let Some(last) = last.filter(|s| s.ident == "Result") else {
        return PromiseTypes {
            ok: quote!(#ty),
            err: None,
        };
    };
    if let PathArguments::AngleBracketed(a) = &last.arguments {
        let types: Vec<_> = a.args.iter().collect();
        if let [GenericArgument::Type(t), GenericArgument::Type(e)] = types.as_slice() {
            return PromiseTypes {
                ok: quote!(#t),
                err: Some(quote!(#e)),
            };
        }
    }
    PromiseTypes {
        ok: quote!(<#ty as #p::MethodResult>::Ok),
        err: Some(quote!(<#ty as #p::MethodResult>::Err)),
    }
}

/// Doc and `cfg` attributes carried from a user method to its generated counterparts.
fn carried_attrs<'a>(m: &Method<'a>) -> (Vec<&'a syn::Attribute>, Vec<&'a syn::Attribute>) {
    let docs = m
        .original
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .collect();
    let cfgs = m
        .original
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .collect();
    (docs, cfgs)
}

/// What validation decided, for the expansion.
pub(crate) struct Parts<'a> {
    /// Which methods passed validation; the others are left out of the handle.
    pub(crate) method_ok: &'a [bool],
    /// Per method: its `#[retry(..)]` settings.
    pub(crate) retry: &'a [RetryAttr],
    /// `#[worker(remote)]` on a type that can have it: also generate the process-mode twin.
    pub(crate) remote: bool,
}

/// `snake_case` to `UpperCamelCase` (a method name to its request variant).
fn upper_camel(ident: &Ident) -> Ident {
    let raw = ident.to_string();
    let raw = raw.strip_prefix("r#").unwrap_or(&raw);
    let mut out = String::new();
    for part in raw.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    if out.is_empty() {
        out.push_str("Call");
    }
    Ident::new(&out, ident.span())
}

/// The whole expansion after the user's impl block.
pub(crate) fn expand(
    args: &WorkerArgs,
    w: &Worker<'_>,
    ident: &Ident,
    parts: &Parts<'_>,
) -> TokenStream {
    let Parts {
        method_ok,
        retry,
        remote,
    } = *parts;
    let krate = args.crate_path();
    let p = quote!(#krate::__private);
    let item = w.item;
    let self_ty = &*item.self_ty;
    let names = Names::new(ident);
    let Names {
        handle,
        blocking,
        options,
    } = &names;
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    let name_str = ident.to_string();

    // The constructor.
    let Some(ctor) = &w.constructor else {
        return TokenStream::new();
    };
    let ctor_names: Vec<&Ident> = ctor.args.iter().map(|a| &a.name).collect();
    let ctor_tys: Vec<Type> = ctor
        .args
        .iter()
        .map(|a| replace_self(a.ty, self_ty))
        .collect();
    let ctor_ret = match ctor.output() {
        ReturnType::Type(_, ty) => replace_self(ty, self_ty),
        ReturnType::Default => return TokenStream::new(),
    };
    let fallible_ctor = !is_self(&ctor_ret, w) && result_of_self(&ctor_ret, w);
    let ctor_span = ctor.original.sig.ident.span();
    let args_ident = Ident::new("args", Span::mixed_site());
    let ctor_call = quote_spanned! {ctor_span=> <#self_ty>::new(#(#ctor_names),*) };
    let (constructed, instance) = if fallible_ctor {
        (quote!(#ctor_ret), ctor_call)
    } else {
        (
            quote!(#p::Infallibly<Self>),
            quote!(#p::Infallibly(#ctor_call)),
        )
    };
    let init_error = if fallible_ctor {
        match promise_types(ctor.output(), self_ty, &p).err {
            Some(e) if !e.to_string().contains("MethodResult") => e,
            _ => quote!(<#ctor_ret as #p::Constructed<#self_ty>>::Error),
        }
    } else {
        quote!(::core::convert::Infallible)
    };

    let init_error_span = match ctor.output() {
        ReturnType::Type(_, ty) => syn::spanned::Spanned::span(&**ty),
        ReturnType::Default => ctor_span,
    };
    let init_error_item = quote_spanned! {init_error_span=>
        type InitError = <#constructed as #p::Constructed<Self>>::Error;
    };
    let worker_impl = quote! {
        #[automatically_derived]
        impl #impl_generics #p::Worker for #self_ty #where_clause {
            type Args = (#(#ctor_tys,)*);
            #init_error_item
            const NAME: &'static str = #name_str;
            fn construct(
                #args_ident: <Self as #p::Worker>::Args,
            ) -> ::core::result::Result<Self, <Self as #p::Worker>::InitError> {
                let (#(#ctor_names,)*) = #args_ident;
                #p::Constructed::into_instance(#instance)
            }
        }
    };

    // Handle and blocking methods.
    let w_ident = Ident::new("worker", Span::mixed_site());
    let mut handle_methods = Vec::new();
    let mut blocking_methods = Vec::new();
    let request = format_ident!("{}Request", ident, span = ident.span());
    let response = format_ident!("{}Response", ident, span = ident.span());
    let mut request_variants = Vec::new();
    let mut response_variants = Vec::new();
    let mut dispatch_arms = Vec::new();
    let mut remote_checks = Vec::new();
    // An `async fn` taking `&self` (always compiled in) makes the worker `Sync` (checked
    // below): then its sync methods taking `&self` need not hold those calls up in async mode.
    let shares = w.methods.iter().zip(method_ok).any(|(m, ok)| {
        *ok && m.is_async
            && m.receiver_kind == ReceiverKind::Shared
            && carried_attrs(m).1.is_empty()
    });
    for ((m, ok), retry) in w.methods.iter().zip(method_ok).zip(retry) {
        if !ok {
            continue;
        }
        let name = m.ident();
        let method_str = name.to_string();
        let vis = &m.original.vis;
        let span = name.span();
        let (docs, cfgs) = carried_attrs(m);
        let arg_names: Vec<&Ident> = m.args.iter().map(|a| &a.name).collect();
        let arg_tys: Vec<Type> = m.args.iter().map(|a| replace_self(a.ty, self_ty)).collect();
        let PromiseTypes { ok: t, err } = promise_types(m.output(), self_ty, &p);
        let wrap = if err.is_some() {
            quote!(fallible)
        } else {
            quote!(value)
        };
        let promise = match &err {
            Some(e) => quote!(#krate::Promise<#t, #e>),
            None => quote!(#krate::Promise<#t>),
        };
        let result = match &err {
            Some(e) => quote!(::core::result::Result<#t, #krate::Error<#e>>),
            None => quote!(::core::result::Result<#t, #krate::Error>),
        };
        let call = quote_spanned! {span=> <#self_ty>::#name(#w_ident, #(#arg_names),*) };
        // `this: &Handle` is bound by the caller of `submit`.
        let this = Ident::new("this", Span::mixed_site());
        let err_ty = match &err {
            Some(e) => e.clone(),
            None => quote!(::core::convert::Infallible),
        };
        let method_retry = method_retry(&p, retry, &t, &err_ty);
        // The arguments travel as one tuple; `Args` picks, by method resolution, a retrying
        // submission when the tuple is `Clone` and a single attempt otherwise.
        let args_tuple = quote!((#(#arg_names,)*));
        let (kind, w_ty, body) = match (m.is_async, m.receiver_kind) {
            (false, ReceiverKind::Shared) if shares => (
                quote!(submit_shared_blocking),
                quote!(&#self_ty),
                quote_spanned! {span=> #p::#wrap(#call) },
            ),
            (false, _) => (
                quote!(submit_blocking),
                quote!(&mut #self_ty),
                quote_spanned! {span=> #p::#wrap(#call) },
            ),
            (true, ReceiverKind::Exclusive) => (
                quote!(submit_exclusive),
                quote!(&mut #self_ty),
                quote_spanned! {span=> ::std::boxed::Box::pin(async move { #p::#wrap(#call.await) }) },
            ),
            (true, _) => (
                quote!(submit_shared),
                quote!(&#self_ty),
                quote_spanned! {span=> ::std::boxed::Box::pin(async move { #p::#wrap(#call.await) }) },
            ),
        };
        let submit = quote_spanned! {span=>
            {
                #[allow(unused_imports)]
                use #p::{SubmitOnce as _, SubmitRetrying as _};
                (&#p::Args::new(#args_tuple)).#kind(
                    &#this.pool,
                    #method_str,
                    &#method_retry,
                    |#w_ident: #w_ty, #args_tuple| #body,
                )
            }
        };
        let submit = if remote {
            let variant = upper_camel(name);
            let ret_ty = match m.output() {
                ReturnType::Type(_, ty) => replace_self(ty, self_ty),
                ReturnType::Default => syn::parse_quote!(()),
            };
            for ty in arg_tys.iter().chain(std::iter::once(&ret_ty)) {
                let ty_span = ty.span();
                remote_checks.push(quote_spanned! {ty_span=>
                    #(#cfgs)*
                    #p::assert_remote_type::<#ty>();
                });
            }
            request_variants.push(quote! { #(#cfgs)* #variant(#(#arg_tys),*) });
            response_variants.push(quote! { #(#cfgs)* #variant(#ret_ty) });
            let remote_call = quote_spanned! {span=> <#self_ty>::#name(self, #(#arg_names),*) };
            let remote_call = if m.is_async {
                quote_spanned! {span=> #p::block_on(#remote_call) }
            } else {
                remote_call
            };
            dispatch_arms.push(quote! {
                #(#cfgs)*
                #request::#variant(#(#arg_names),*) => #response::#variant(#remote_call),
            });
            let out = Ident::new("out", Span::mixed_site());
            let response_ident = Ident::new("response", Span::mixed_site());
            quote! {
                if #this.process {
                    match #this.pool.remote_method(
                        #method_str,
                        &#method_retry,
                        #request::#variant(#(#arg_names),*),
                        |#response_ident| match #response_ident {
                            #response::#variant(#out) => ::core::option::Option::Some(#p::#wrap(#out)),
                            #[allow(unreachable_patterns)]
                            _ => ::core::option::Option::None,
                        },
                    ) {
                        ::core::option::Option::Some(#this) => #this,
                        ::core::option::Option::None => #krate::Promise::ready(
                            ::core::result::Result::Err(#krate::Error::widen(#krate::Error::Stopped)),
                        ),
                    }
                } else #submit
            }
        } else {
            submit
        };
        let sync_check = if m.is_async && m.receiver_kind == ReceiverKind::Shared {
            let self_ty_here = respan(quote!(#self_ty), span);
            quote_spanned! {span=> #p::async_self_methods_need_a_sync_worker::<#self_ty_here>(); }
        } else {
            quote!()
        };
        // Each argument may be a value or a promise of one (`Arg`): the fast path submits at
        // once; otherwise the arguments are awaited first, in a task on the caller's runtime
        // (else the pool's or the library's: `chain_in`).
        let body = if arg_names.is_empty() {
            quote! {
                #sync_check
                let #this = self;
                #submit
            }
        } else {
            let handle_clone = Ident::new("handle", Span::mixed_site());
            quote! {
                #sync_check
                match (#(#krate::Arg::into_arg(#arg_names),)*) {
                    (#(::core::result::Result::Ok(#arg_names),)*) => {
                        let #this = self;
                        #submit
                    }
                    (#(#arg_names,)*) => {
                        let #handle_clone = ::core::clone::Clone::clone(self);
                        #p::chain_in(&self.pool, async move {
                            #(
                                let #arg_names = match #p::resolve(#arg_names).await {
                                    ::core::result::Result::Ok(v) => v,
                                    ::core::result::Result::Err(e) => {
                                        return ::core::result::Result::Err(e);
                                    }
                                };
                            )*
                            let #this = &#handle_clone;
                            ::core::result::Result::Ok(#submit)
                        })
                    }
                }
            }
        };
        let arg_params: Vec<TokenStream> = arg_tys
            .iter()
            .map(|t| quote!(impl #krate::Arg<#t>))
            .collect();
        let default_doc = if docs.is_empty() {
            let text = format!(" Calls [`{ident}::{method_str}`] on a worker of the pool.");
            quote!(#[doc = #text])
        } else {
            quote!()
        };
        let see = format!(
            " Runs on a worker of the pool, like [`{ident}::{method_str}`]; the returned promise resolves to its result."
        );
        handle_methods.push(quote! {
            #(#cfgs)*
            #(#docs)*
            #default_doc
            ///
            #[doc = #see]
            #vis fn #name(&self, #(#arg_names: #arg_params),*) -> #promise {
                #body
            }
        });
        let blocking_doc = format!(
            " Calls [`{handle}::{method_str}`] and waits for its result (blocks the calling thread)."
        );
        blocking_methods.push(quote! {
            #(#cfgs)*
            #(#docs)*
            #default_doc
            ///
            #[doc = #blocking_doc]
            #vis fn #name(&self, #(#arg_names: #arg_params),*) -> #result {
                #handle::#name(self.handle, #(#arg_names),*).result()
            }
        });
    }

    let handle_doc = format!(
        " A handle to a pool of [`{ident}`] workers: each method submits a call and returns a promise.\n\n\
         Build one with [`{ident}::options`]`().init(..)`. Clones share the pool; it stops when \
         [`stop`]({handle}::stop) is called or the last clone is dropped."
    );
    let blocking_doc = format!(
        " Blocking calls on a pool of [`{ident}`] workers: each method waits for its result. \
         Get one with [`{handle}::blocking`]."
    );
    let options_doc = format!(
        " Options of a pool of [`{ident}`] workers, from [`{ident}::options`]; `init(..)` \
         takes the arguments of [`{ident}::new`] and starts the pool."
    );
    let options_fn_doc = format!(
        " Options for a pool of `{ident}` workers; finish with `.init(..)`, which takes the \
         arguments of [`{ident}::new`]."
    );
    let handle_debug = handle.to_string();
    let blocking_debug = blocking.to_string();
    let options_debug = options.to_string();

    // `'a` for the blocking view, in front of the impl's own generics.
    let mut blocking_generics = item.generics.clone();
    blocking_generics.params.insert(0, syn::parse_quote!('a));
    let (b_impl_generics, b_ty_generics, b_where_clause) = blocking_generics.split_for_impl();
    let ty_args: Vec<TokenStream> = item
        .generics
        .params
        .iter()
        .map(|param| match param {
            syn::GenericParam::Lifetime(l) => {
                let l = &l.lifetime;
                quote!(#l)
            }
            syn::GenericParam::Type(t) => {
                let i = &t.ident;
                quote!(#i)
            }
            syn::GenericParam::Const(c) => {
                let i = &c.ident;
                quote!(#i)
            }
        })
        .collect();

    let option_defaults = args.option_defaults(&krate);
    let name_default = args
        .name
        .as_ref()
        .map(|(name, _)| quote!(let options = options.name(#name);));

    let process_ident = Ident::new("process", Span::call_site());
    let (process_field, process_clone, init_body, remote_items) = if remote {
        let pool = Ident::new("pool", Span::mixed_site());
        let init_body = quote! {
            ::core::result::Result::map(
                self.0.init_remote_with((#(#ctor_names,)*)),
                |#pool| {
                    let process = #p::pool_is_remote(&#pool);
                    #handle { pool: #pool, process }
                },
            )
        };
        let mut ctor_checks: Vec<TokenStream> = ctor_tys
            .iter()
            .map(|ty| {
                let ty_span = ty.span();
                quote_spanned! {ty_span=> #p::assert_remote_type::<#ty>(); }
            })
            .collect();
        if fallible_ctor {
            ctor_checks.push(quote_spanned! {init_error_span=>
                #p::assert_remote_type::<#init_error>();
            });
        }
        let serde_path = format!("{}::__private::serde", krate.to_string().replace(' ', ""));
        // The constructor's error crosses to the parent typed, so it is a serde type; one
        // that cannot happen is `wire::Never` (std's `Infallible` is not serde).
        let remote_init_error = if fallible_ctor {
            quote!(<Self as #p::Worker>::InitError)
        } else {
            quote!(#krate::wire::Never)
        };
        let lookup_doc = format!(
            " A handle on the running `Mode::Cluster` pool named `name` (started with \
             `.name(name)`, by this process or another) in `cluster`'s namespace: its calls \
             go to that pool's instances, through its owner. Feature `cluster`; see \
             `concurry::cluster` (*Named pools*) for what `stop()` and the owner's end do to \
             it.\n\n # Errors\n\n `Error::Config` naming `name` (and the pools seen) if no \
             pool of that name runs there, or if it runs another type than [`{ident}`]."
        );
        let request_variants = &request_variants;
        // What both sides of a channel must agree on: the type's name and its methods'
        // signatures, as the request and response enums spell them.
        let schema = schema_fingerprint(&[
            name_str.to_string(),
            quote!(#(#request_variants,)*).to_string(),
            quote!(#(#response_variants,)*).to_string(),
        ]);
        let items = quote! {
            #[doc(hidden)]
            #[allow(missing_docs, clippy::all, clippy::pedantic)]
            #[derive(#p::serde::Serialize, #p::serde::Deserialize)]
            #[serde(crate = #serde_path)]
            pub enum #request {
                #(#request_variants,)*
            }

            #[doc(hidden)]
            #[allow(missing_docs, clippy::all, clippy::pedantic)]
            #[derive(#p::serde::Serialize, #p::serde::Deserialize)]
            #[serde(crate = #serde_path)]
            pub enum #response {
                #(#response_variants,)*
            }

            const _: () = {
                #[allow(dead_code, clippy::all)]
                fn remote_types_are_serde() {
                    #(#ctor_checks)*
                    #(#remote_checks)*
                }
            };

            #[automatically_derived]
            impl #krate::RemoteWorker for #self_ty {
                const NAME: &'static str = ::core::concat!(::core::module_path!(), "::", #name_str);
                const SCHEMA: u64 = #schema;
                type Args = <Self as #p::Worker>::Args;
                type Request = #request;
                type Response = #response;
                type InitError = #remote_init_error;
                fn construct(
                    #args_ident: <Self as #p::Worker>::Args,
                ) -> ::core::result::Result<Self, #remote_init_error> {
                    ::core::result::Result::map_err(
                        <Self as #p::Worker>::construct(#args_ident),
                        ::core::convert::Into::into,
                    )
                }
                #[allow(unreachable_code)]
                fn dispatch(&mut self, request: #request) -> #response {
                    match request {
                        #(#dispatch_arms)*
                    }
                }
            }

            #krate::register_remote!(#self_ty);

            #[automatically_derived]
            impl #self_ty {
                #[doc = #lookup_doc]
                pub fn lookup(
                    cluster: &#p::LookupCluster,
                    name: &str,
                ) -> ::core::result::Result<#handle, #krate::Error> {
                    ::core::result::Result::map(#p::lookup::<#self_ty>(cluster, name), |#pool| {
                        let process = #p::pool_is_remote(&#pool);
                        #handle { pool: #pool, process }
                    })
                }
            }
        };
        (
            quote!(#process_ident: bool,),
            quote!(#process_ident: self.#process_ident,),
            init_body,
            items,
        )
    } else {
        (
            quote!(),
            quote!(),
            quote! {
                ::core::result::Result::map(
                    self.0.init_with((#(#ctor_names,)*)),
                    |pool| #handle { pool },
                )
            },
            quote!(),
        )
    };

    quote! {
        #worker_impl
        #remote_items

        #[doc = #handle_doc]
        pub struct #handle #impl_generics #where_clause {
            pool: #p::Pool<#self_ty>,
            #process_field
        }

        #[automatically_derived]
        impl #impl_generics ::core::clone::Clone for #handle #ty_generics #where_clause {
            #[inline]
            fn clone(&self) -> Self {
                #handle {
                    pool: ::core::clone::Clone::clone(&self.pool),
                    #process_clone
                }
            }
        }

        #[automatically_derived]
        impl #impl_generics ::core::fmt::Debug for #handle #ty_generics #where_clause {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#handle_debug).field("pool", &self.pool).finish()
            }
        }

        #[automatically_derived]
        impl #impl_generics #handle #ty_generics #where_clause {
            #(#handle_methods)*

            /// Stops the pool: no new calls are accepted, queued calls finish (or fail with
            /// `Error::Stopped` after the stop timeout), and every worker is joined. Also
            /// happens when the last clone of the handle is dropped.
            ///
            /// # Errors
            ///
            /// `Error::StopTimeout` (how many calls were failed as `Stopped`, how many were
            /// still running) if the stop timeout ran out; a worker still in a call is left to
            /// finish it and exit on its own. Calling `stop` again does nothing and returns
            /// `Ok(())`.
            pub fn stop(&self) -> ::core::result::Result<(), #krate::Error> {
                self.pool.stop()
            }

            /// A snapshot of the pool's counters, per worker.
            #[must_use]
            pub fn stats(&self) -> #krate::PoolStats {
                self.pool.stats()
            }

            /// Whether [`stop`](Self::stop) was called.
            #[must_use]
            pub fn is_stopped(&self) -> bool {
                self.pool.is_stopped()
            }

            /// A view of this handle whose methods wait for their results.
            #[must_use]
            pub fn blocking(&self) -> #blocking<'_ #(, #ty_args)*> {
                #blocking { handle: self }
            }
        }

        #[doc = #blocking_doc]
        pub struct #blocking #b_impl_generics #b_where_clause {
            handle: &'a #handle #ty_generics,
        }

        #[automatically_derived]
        impl #b_impl_generics ::core::clone::Clone for #blocking #b_ty_generics #b_where_clause {
            #[inline]
            fn clone(&self) -> Self {
                *self
            }
        }

        #[automatically_derived]
        impl #b_impl_generics ::core::marker::Copy for #blocking #b_ty_generics #b_where_clause {}

        #[automatically_derived]
        impl #b_impl_generics ::core::fmt::Debug for #blocking #b_ty_generics #b_where_clause {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#blocking_debug).field("handle", &self.handle).finish()
            }
        }

        #[automatically_derived]
        impl #b_impl_generics #blocking #b_ty_generics #b_where_clause {
            #(#blocking_methods)*
        }

        #[doc = #options_doc]
        pub struct #options #impl_generics (#p::Options<#self_ty>) #where_clause;

        #[automatically_derived]
        impl #impl_generics ::core::fmt::Debug for #options #ty_generics #where_clause {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_tuple(#options_debug).field(&self.0).finish()
            }
        }

        #[automatically_derived]
        impl #impl_generics #options #ty_generics #where_clause {
            #p::options_builder_methods!();

            /// Starts the pool: every worker builds its own instance with
            #[doc = concat!(" [`", #name_str, "::new`]`(..)`, called with a clone of these arguments.")]
            ///
            /// # Errors
            ///
            /// `Error::Method(e)` if the constructor fails, `Error::Config` for invalid options.
            pub fn init(
                self,
                #(#ctor_names: #ctor_tys),*
            ) -> ::core::result::Result<#handle #ty_generics, #krate::Error<#init_error>> {
                #init_body
            }
        }

        #[automatically_derived]
        impl #impl_generics #self_ty #where_clause {
            #[doc = #options_fn_doc]
            #[must_use]
            pub fn options() -> #options #ty_generics {
                let options = #options(::core::default::Default::default());
                #option_defaults
                #name_default
                options
            }
        }
    }
}

/// The `MethodRetry` value of a method's `#[retry(..)]`. `on`/`until` functions are called
/// from a non-capturing closure (so deref coercion applies: `fn(&str)` checks a `String`),
/// spanned at the attribute, so a wrong signature is reported there.
pub(crate) fn method_retry(
    p: &TokenStream,
    retry: &RetryAttr,
    t: &TokenStream,
    e: &TokenStream,
) -> TokenStream {
    let never = retry.never;
    let attempts = match retry.attempts {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let on = match &retry.on {
        Some(path) => {
            let span = path.span();
            quote_spanned! {span=> ::core::option::Option::Some((|error: &#e| #path(error)) as fn(&#e) -> bool) }
        }
        None => quote!(::core::option::Option::None),
    };
    let until = match &retry.until {
        Some(path) => {
            let span = path.span();
            let name = path.to_token_stream().to_string().replace(' ', "");
            quote_spanned! {span=> ::core::option::Option::Some((#name, (|output: &#t| #path(output)) as fn(&#t) -> bool)) }
        }
        None => quote!(::core::option::Option::None),
    };
    quote! {
        #p::MethodRetry::<#t, #e> { never: #never, attempts: #attempts, on: #on, until: #until }
    }
}

/// A remote type's schema fingerprint: FNV-1a (64 bits) of `parts`' token text, as a
/// suffixed literal. Two builds from the same source agree; a changed signature does not.
pub(crate) fn schema_fingerprint(parts: &[String]) -> proc_macro2::Literal {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    proc_macro2::Literal::u64_suffixed(hash)
}

#[cfg(test)]
mod schema_tests {
    use super::schema_fingerprint;

    #[test]
    fn the_fingerprint_follows_the_signatures_and_only_them() {
        let of = |parts: &[&str]| {
            schema_fingerprint(&parts.iter().map(|p| p.to_string()).collect::<Vec<_>>()).to_string()
        };
        let v1 = of(&["Echo", "Next(u64)", "Next(u64)"]);
        assert_eq!(v1, of(&["Echo", "Next(u64)", "Next(u64)"]));
        assert_ne!(v1, of(&["Echo", "Next(u32)", "Next(u64)"]));
        assert_ne!(v1, of(&["Echo2", "Next(u64)", "Next(u64)"]));
        // Parts are delimited: moving text from one part to the next changes the hash.
        assert_ne!(of(&["ab", "c"]), of(&["a", "bc"]));
        assert!(v1.ends_with("u64"), "{v1}");
    }
}
