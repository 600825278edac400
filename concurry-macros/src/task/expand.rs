//! Generating the companion module of a validated `#[task]` function: `submit`, `map`,
//! `map_unordered`, `options`, `handle`, `stop`, and the `Handle` and `Options` types.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{GenericArgument, PathArguments, ReturnType, Type};

use super::model::Task;
use crate::worker::args::WorkerArgs;
use crate::worker::expand::method_retry;
use crate::worker::retry::RetryAttr;

/// The `T` and `E` of the function's promise.
struct PromiseTypes {
    ok: TokenStream,
    err: Option<TokenStream>,
}

fn promise_types(output: &ReturnType, p: &TokenStream) -> PromiseTypes {
    let ReturnType::Type(_, ty) = output else {
        return PromiseTypes {
            ok: quote!(()),
            err: None,
        };
    };
    let last = match &**ty {
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
    // An alias such as `io::Result<T>`.
    PromiseTypes {
        ok: quote!(<#ty as #p::MethodResult>::Ok),
        err: Some(quote!(<#ty as #p::MethodResult>::Err)),
    }
}

/// The module and everything in it.
pub(crate) fn expand(args: &WorkerArgs, t: &Task<'_>, retry: &RetryAttr) -> TokenStream {
    let krate = args.crate_path();
    let p = quote!(#krate::__private);
    let ident = t.ident();
    let vis = &t.item.vis;
    let span = ident.span();
    let name_str = ident.to_string();
    let cfgs: Vec<_> = t
        .item
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .collect();

    let names: Vec<&Ident> = t.args.iter().map(|a| &a.name).collect();
    let tys: Vec<&Type> = t.args.iter().map(|a| a.ty).collect();
    let (item_ty, pattern) = match (names.as_slice(), tys.as_slice()) {
        ([], _) => (quote!(()), quote!(())),
        ([n], [ty]) => (quote!(#ty), quote!(#n)),
        _ => (quote!((#(#tys,)*)), quote!((#(#names,)*))),
    };

    let PromiseTypes { ok, err } = promise_types(t.output(), &p);
    let (promise, task_map) = match &err {
        Some(e) => (
            quote!(#krate::Promise<#ok, #e>),
            quote!(#krate::TaskMap<'a, #ok, #e>),
        ),
        None => (
            quote!(#krate::Promise<#ok>),
            quote!(#krate::TaskMap<'a, #ok>),
        ),
    };

    // Locals of the generated code are hygienic: a user argument called `items` or `inner`
    // cannot clash with them.
    let items = Ident::new("items", Span::mixed_site());
    let inner = Ident::new("inner", Span::mixed_site());
    let handle_v = Ident::new("handle", Span::mixed_site());
    let error_v = Ident::new("error", Span::mixed_site());

    let call = quote_spanned! {span=> super::#ident(#(#names),*) };
    let wrap = if err.is_some() {
        quote!(fallible)
    } else {
        quote!(value)
    };
    let err_ty = match &err {
        Some(e) => e.clone(),
        None => quote!(::core::convert::Infallible),
    };
    // The arguments travel as one tuple; `Args` picks, by method resolution, a submission
    // retried per the pool's `retry` option when the tuple is `Clone`, and a single attempt
    // otherwise (as `#[worker]` does). Async functions run as shared calls: several at once
    // per worker in async mode.
    let args_tuple = quote!((#(#names,)*));
    let (kind, w_ty, body) = if t.is_async {
        (
            quote!(submit_shared),
            quote!(&#krate::TaskWorker),
            quote_spanned! {span=> ::std::boxed::Box::pin(async move { #p::#wrap(#call.await) }) },
        )
    } else {
        (
            quote!(submit_blocking),
            quote!(&mut #krate::TaskWorker),
            quote_spanned! {span=> #p::#wrap(#call) },
        )
    };
    let method_retry = method_retry(&p, retry, &ok, &err_ty);
    let pool_v = Ident::new("pool", Span::mixed_site());
    let remote = args.remote.is_some();
    // Spanned at the function's name: a future or an argument that is not `Send` is
    // reported there. `handle` is a `TaskWorkerHandle`.
    let submit_to = |handle: TokenStream| {
        let local = quote_spanned! {span=>
            {
                #[allow(unused_imports)]
                use #p::{SubmitOnce as _, SubmitRetrying as _};
                (&#p::Args::new(#args_tuple)).#kind(
                    #handle.__pool(),
                    #name_str,
                    &#method_retry,
                    |_: #w_ty, #args_tuple| #body,
                )
            }
        };
        if !remote {
            return local;
        }
        // In process mode the call goes to a child as the task's name and its encoded
        // arguments (`RemoteTask` below); in every other mode it runs in this process.
        quote_spanned! {span=>
            if #p::is_remote(#handle) {
                #p::submit_remote_task::<__RemoteTask, #ok, #err_ty>(
                    #handle,
                    #name_str,
                    &#method_retry,
                    #args_tuple,
                    #p::#wrap,
                )
            } else #local
        }
    };
    // Each argument may be a value or a promise of one (`Arg`, as on `#[worker]` handles):
    // the fast path submits at once; otherwise the arguments are awaited first, in a task on
    // the caller's multi-thread runtime (else the library's: `chain`), without blocking the
    // caller.
    let submit = if names.is_empty() {
        submit_to(quote!(&self.#inner))
    } else {
        let now = submit_to(quote!(&self.#inner));
        let handle_clone = Ident::new("this", Span::mixed_site());
        let later = submit_to(quote!(&#handle_clone.#inner));
        quote! {
            match (#(#krate::Arg::into_arg(#names),)*) {
                (#(::core::result::Result::Ok(#names),)*) => #now,
                (#(#names,)*) => {
                    let #handle_clone = ::core::clone::Clone::clone(self);
                    #p::chain(async move {
                        #(
                            let #names = match #p::resolve(#names).await {
                                ::core::result::Result::Ok(v) => v,
                                ::core::result::Result::Err(e) => {
                                    return ::core::result::Result::Err(e);
                                }
                            };
                        )*
                        ::core::result::Result::Ok(#later)
                    })
                }
            }
        }
    };
    let arg_params: Vec<TokenStream> = tys.iter().map(|t| quote!(impl #krate::Arg<#t>)).collect();
    // `#[task(remote)]`: a submit with a durable task's options (cluster mode).
    let submit_with = if remote {
        let submit_with_doc = format!(
            " As `submit`, with the options of a durable task (`concurry::cluster::Submit`: its \
             id, priority, delay or ETA, retries), in a pool started with `.mode(Mode::Cluster)`; \
             the promise's `task_id()` is the task's id. In any other mode the promise fails with \
             `Error::Config`. The arguments are values (as `{name_str}`'s), not promises."
        );
        let submit_v = Ident::new("submit", Span::mixed_site());
        let body = quote_spanned! {span=>
            #p::submit_remote_task_with::<__RemoteTask, #ok, #err_ty>(
                &self.#inner,
                #name_str,
                &#method_retry,
                #args_tuple,
                #p::#wrap,
                #submit_v,
            )
        };
        quote! {
            #[doc = #submit_with_doc]
            pub fn submit_with(&self, #(#names: #tys,)* #submit_v: #p::TaskSubmit) -> #promise {
                #body
            }
        }
    } else {
        TokenStream::new()
    };
    let submit_item = submit_to(quote!(&#pool_v));
    // A sync function's map sends chunks of items, each running the function in-line, when
    // its calls run once in this process (`__map_task` decides); otherwise, and for an async
    // function, each item is its own call.
    let map = if t.is_async {
        quote_spanned! {span=>
            let #pool_v = ::core::clone::Clone::clone(&self.#inner);
            self.#inner.map_with(#items, move |#pattern: #item_ty| #submit_item)
        }
    } else {
        quote_spanned! {span=>
            let #pool_v = ::core::clone::Clone::clone(&self.#inner);
            self.#inner.__map_task(
                #items,
                &#method_retry,
                move |#pattern: #item_ty| #submit_item,
                |#pattern: #item_ty| #p::#wrap(#call),
            )
        }
    };

    let remote_items = if remote {
        remote_items(&krate, t, &names, &tys, span, &method_retry, err.is_some())
    } else {
        TokenStream::new()
    };

    let option_defaults = args.option_defaults(&krate);
    let pool_name = args
        .name
        .as_ref()
        .map_or_else(|| name_str.clone(), |(n, _)| n.clone());

    let item_doc = if names.len() > 1 {
        format!(
            " Each item is a tuple of the arguments of [`{name_str}`](fn@super::{name_str}); \
             [`zip`]({krate}::zip) several iterables to build them.",
            krate = krate.to_string().replace(' ', "")
        )
    } else {
        format!(" Each item is the argument of [`{name_str}`](fn@super::{name_str}).")
    };
    let mod_doc = format!(
        " Runs `{name_str}` on a pool of workers (generated by `#[task]`).\n\n\
         - `{name_str}::submit(..)` takes the function's arguments and returns a promise;\n\
         - `{name_str}::map(items)` / `{name_str}::map_unordered(items)` call it on every item, \
         spread over the pool, lazily and with a bounded window of calls in flight;\n\
         - `{name_str}::stop()` stops the implicit pool these use, which starts on first use \
         with the `#[task(..)]` defaults (and again after a stop). A pool still running when \
         the process exits is drained then: queued calls finish first, for at most its \
         `stop_timeout`;\n\
         - `{name_str}::options()...init()` builds a separately configured pool, a `Handle`."
    );
    let submit_doc = format!(
        " Calls [`{name_str}`](fn@super::{name_str}) on a worker of the pool with these \
         arguments; the promise resolves to its result. Each argument may be a value, a \
         `Promise` of one (awaited first, without blocking the caller) or `&str` for a \
         `String`."
    );
    let map_doc = format!(
        " Calls [`{name_str}`](fn@super::{name_str}) on every item, spread over the workers of \
         the pool, and yields the results in input order. Lazy and bounded: see \
         [`TaskMap`]({}::TaskMap).",
        krate.to_string().replace(' ', "")
    );
    let map_unordered_doc = " Like `map`, yielding results as they complete.";
    let options_doc = format!(
        " Options of a pool running [`{name_str}`](fn@super::{name_str}), from [`options`]; \
         `init()` starts it."
    );
    let init_doc = if remote {
        " Starts the pool: in `Mode::Process` its workers are child processes (the current \
         executable re-executed); in `Mode::Cluster` (with `.cluster(..)`) each `submit` is a \
         durable task the cluster's nodes run, its promise resolved by the stored result; in \
         every other mode threads or tasks of this process."
    } else {
        " Starts the pool. `Mode::Process` and `Mode::Cluster` need `#[task(remote)]`."
    };
    let handle_doc = format!(
        " A pool running [`{name_str}`](fn@super::{name_str}). Clones share the pool; it stops \
         when `stop()` is called or the last clone is dropped."
    );

    quote! {
        #(#cfgs)*
        #[doc = #mod_doc]
        #vis mod #ident {
            #[allow(unused_imports)]
            use super::*;

            static POOL: #krate::ImplicitPool = #krate::ImplicitPool::new();

            #remote_items

            #[doc = #options_doc]
            pub struct Options(#krate::TaskWorkerOptions);

            #[automatically_derived]
            impl ::core::fmt::Debug for Options {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.debug_tuple("Options").field(&self.0).finish()
                }
            }

            #[automatically_derived]
            impl Options {
                #p::options_builder_methods!();

                #[doc = #init_doc]
                ///
                /// # Errors
                ///
                /// `Error::Config` for invalid options; `Error::Init` when a child process
                /// cannot start.
                pub fn init(self) -> ::core::result::Result<Handle, #krate::Error> {
                    ::core::result::Result::map(
                        // Inside this module, `module_path!()` is the function's path.
                        #p::init_task(self.0, ::core::module_path!(), #remote),
                        |#inner| Handle { #inner },
                    )
                }
            }

            #[doc = #handle_doc]
            pub struct Handle {
                #inner: #krate::TaskWorkerHandle,
            }

            #[automatically_derived]
            impl ::core::clone::Clone for Handle {
                #[inline]
                fn clone(&self) -> Self {
                    Handle { #inner: ::core::clone::Clone::clone(&self.#inner) }
                }
            }

            #[automatically_derived]
            impl ::core::fmt::Debug for Handle {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.debug_struct("Handle").field("pool", &self.#inner).finish()
                }
            }

            #[automatically_derived]
            impl Handle {
                #[doc = #submit_doc]
                pub fn submit(&self, #(#names: #arg_params),*) -> #promise {
                    #submit
                }

                #submit_with

                #[doc = #map_doc]
                ///
                #[doc = #item_doc]
                pub fn map<'a, I>(&self, #items: I) -> #task_map
                where
                    I: ::core::iter::IntoIterator<Item = #item_ty>,
                    I::IntoIter: ::core::marker::Send + 'a,
                {
                    #map
                }

                #[doc = #map_unordered_doc]
                pub fn map_unordered<'a, I>(&self, #items: I) -> #task_map
                where
                    I: ::core::iter::IntoIterator<Item = #item_ty>,
                    I::IntoIter: ::core::marker::Send + 'a,
                {
                    self.map(#items).unordered()
                }

                /// Stops the pool: queued calls finish (or fail with `Error::Stopped` after
                /// the stop timeout) and every worker is joined.
                ///
                /// # Errors
                ///
                /// `Error::StopTimeout` (how many calls failed, how many still ran) if the stop
                /// timeout ran out.
                pub fn stop(&self) -> ::core::result::Result<(), #krate::Error> {
                    self.#inner.stop()
                }

                /// A snapshot of the pool's counters, per worker.
                #[must_use]
                pub fn stats(&self) -> #krate::PoolStats {
                    self.#inner.stats()
                }

                /// Whether `stop` was called.
                #[must_use]
                pub fn is_stopped(&self) -> bool {
                    self.#inner.is_stopped()
                }
            }

            /// Options for a separate pool running the function, starting from the
            /// `#[task(..)]` defaults; finish with `.init()`.
            #[must_use]
            pub fn options() -> Options {
                let options = Options(#krate::TaskWorker::options());
                let options = options.name(#pool_name);
                #option_defaults
                options
            }

            /// The implicit pool `submit`, `map` and `map_unordered` use, started on first use
            /// (and again after `stop()`).
            ///
            /// # Errors
            ///
            /// When the pool cannot start.
            pub fn handle() -> ::core::result::Result<Handle, #krate::Error> {
                ::core::result::Result::map(
                    self::POOL.get_or_init(|| ::core::result::Result::map(self::options().init(), |h| h.#inner)),
                    |#inner| Handle { #inner },
                )
            }

            #[doc = #submit_doc]
            /// Runs on the implicit pool.
            pub fn submit(#(#names: #arg_params),*) -> #promise {
                match self::handle() {
                    ::core::result::Result::Ok(#handle_v) => #handle_v.submit(#(#names),*),
                    ::core::result::Result::Err(#error_v) => #krate::Promise::ready(
                        ::core::result::Result::Err(#error_v.widen()),
                    ),
                }
            }

            #[doc = #map_doc]
            ///
            #[doc = #item_doc]
            /// Runs on the implicit pool.
            pub fn map<'a, I>(#items: I) -> #task_map
            where
                I: ::core::iter::IntoIterator<Item = #item_ty>,
                I::IntoIter: ::core::marker::Send + 'a,
            {
                match self::handle() {
                    ::core::result::Result::Ok(#handle_v) => #handle_v.map(#items),
                    ::core::result::Result::Err(#error_v) => #p::failed_map(#items, &#error_v),
                }
            }

            #[doc = #map_unordered_doc]
            /// Runs on the implicit pool.
            pub fn map_unordered<'a, I>(#items: I) -> #task_map
            where
                I: ::core::iter::IntoIterator<Item = #item_ty>,
                I::IntoIter: ::core::marker::Send + 'a,
            {
                self::map(#items).unordered()
            }

            /// Stops the implicit pool, letting queued calls finish; the next call starts a
            /// new one.
            ///
            /// # Errors
            ///
            /// `Error::StopTimeout` (how many calls failed, how many still ran) if the stop
            /// timeout ran out.
            pub fn stop() -> ::core::result::Result<(), #krate::Error> {
                self::POOL.stop()
            }
        }
    }
}

/// `#[task(remote)]`: the function as a [`RemoteTask`] a child process runs by name, its
/// registration, and a serde check of each argument and return type at that type's span.
fn remote_items(
    krate: &TokenStream,
    t: &Task<'_>,
    names: &[&Ident],
    tys: &[&Type],
    span: Span,
    method_retry: &TokenStream,
    fallible: bool,
) -> TokenStream {
    let p = quote!(#krate::__private);
    // On a cluster's nodes (durable tasks) an `Err` is a failed attempt, judged by the
    // function's `#[retry]`.
    let inspect = fallible.then(|| {
        quote! {
            fn inspect(output: &Self::Output) -> #krate::TaskOutput<'_> {
                match output {
                    ::core::result::Result::Ok(value) => #krate::TaskOutput::Value(value),
                    ::core::result::Result::Err(error) => {
                        #[allow(unused_imports)]
                        use #p::{DescribeDebug as _, DescribeName as _};
                        #krate::TaskOutput::Error {
                            error,
                            message: (&&#p::Describe(error)).describe(),
                        }
                    }
                }
            }
        }
    });
    let ident = t.ident();
    let output: Type = match t.output() {
        ReturnType::Type(_, ty) => (**ty).clone(),
        ReturnType::Default => syn::parse_quote!(()),
    };
    let checks = tys.iter().copied().chain(match t.output() {
        ReturnType::Type(_, ty) => Some(&**ty),
        ReturnType::Default => None,
    });
    let checks = checks.map(|ty| {
        let ty_span = ty.span();
        quote_spanned! {ty_span=> #p::assert_remote_type::<#ty>(); }
    });
    // Spanned at the function's argument list: a type there that is not serde is reported
    // at the list (and, by the checks, at the type itself), not at the attribute.
    let args_span = t.item.sig.paren_token.span.join();
    let args_ty = quote_spanned! {args_span=> (#(#tys,)*) };
    let call = quote_spanned! {span=> super::#ident(#(#names),*) };
    let call = if t.is_async {
        quote_spanned! {span=> #p::block_on(#call) }
    } else {
        call
    };
    let schema = crate::worker::expand::schema_fingerprint(&[
        ident.to_string(),
        args_ty.to_string(),
        quote!(#output).to_string(),
    ]);
    let task_doc = format!(
        " `{ident}` as a durable task (`RemoteTask`), for what takes its type: \
         `cluster.task_result::<{ident}::Task>(&id)?.result()` fetches its typed result by id \
         from any process, `cluster.tasks()?.submit::<{ident}::Task>(args)` submits it \
         without a pool."
    );
    quote! {
        /// The function as a task a child process runs by name (`#[task(remote)]`).
        #[doc(hidden)]
        #[derive(Debug)]
        pub struct __RemoteTask;

        #[doc = #task_doc]
        pub type Task = __RemoteTask;

        #[automatically_derived]
        impl #krate::RemoteTask for __RemoteTask {
            // Inside this module, `module_path!()` is the function's path: unique in the
            // binary and the same in the parent and its children.
            const NAME: &'static str = ::core::module_path!();
            const SCHEMA: u64 = #schema;
            type Args = #args_ty;
            type Output = #output;
            fn run((#(#names,)*): Self::Args) -> Self::Output {
                #call
            }
            fn retry() -> ::core::option::Option<#krate::RetryConfig> {
                (#method_retry).durable_config()
            }
            #inspect
        }

        #krate::register_remote_task!(__RemoteTask);

        const _: () = {
            #[allow(dead_code, clippy::all)]
            fn remote_types_are_serde() {
                #(#checks)*
            }
        };
    }
}
