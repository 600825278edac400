//! [`WorkerArgs`]: the arguments of `#[worker(..)]`, each kept with its span.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Lit, Meta, Token};

use crate::ctxt::Ctxt;

/// The option keys `#[worker]` understands, in the order error messages list them.
pub(crate) const KEYS: &[&str] = &[
    "crate",
    "mode",
    "max_workers",
    "load_balancing",
    "name",
    "remote",
];

/// Renamed or misspelt keys, with what they are spelled as.
const HINTS: &[(&str, &str)] = &[
    ("workers", "max_workers"),
    ("num_workers", "max_workers"),
    ("n_workers", "max_workers"),
    ("max_worker", "max_workers"),
    ("concurrency", "max_workers"),
    ("load_balance", "load_balancing"),
    ("balancing", "load_balancing"),
    ("lb", "load_balancing"),
    ("crate_path", "crate"),
    ("krate", "crate"),
    ("execution_mode", "mode"),
];

/// Where the workers run, as `#[worker(mode = "..")]` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ModeArg {
    Sync,
    Thread,
    Async,
    /// Child processes: only with `remote` (see `validate::check_process_needs_remote`).
    Process,
}

/// `#[worker(load_balancing = "..")]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoadBalancingArg {
    RoundRobin,
    LeastActive,
    LeastTotal,
    Random,
}

/// The parsed arguments; every value keeps the span of the token that set it.
#[derive(Default)]
pub(crate) struct WorkerArgs {
    /// `crate = path`: where `__private`, `Promise`, `Error`, `Mode` and `LoadBalancing` live.
    pub(crate) krate: Option<(syn::Path, Span)>,
    pub(crate) mode: Option<(ModeArg, Span)>,
    pub(crate) max_workers: Option<(usize, Span)>,
    pub(crate) load_balancing: Option<(LoadBalancingArg, Span)>,
    pub(crate) name: Option<(String, Span)>,
    /// `remote`: the type can also run in a child process (`Mode::Process`).
    pub(crate) remote: Option<((), Span)>,
}

impl WorkerArgs {
    /// Statements applying the `mode`, `max_workers` and `load_balancing` defaults to a
    /// variable `options` (the body of a generated `options()`).
    pub(crate) fn option_defaults(&self, krate: &TokenStream) -> TokenStream {
        let mode = self.mode.map(|(m, span)| {
            let variant = match m {
                ModeArg::Sync => quote_spanned!(span=> Sync),
                ModeArg::Thread => quote_spanned!(span=> Thread),
                ModeArg::Async => quote_spanned!(span=> Async),
                ModeArg::Process => quote_spanned!(span=> Process),
            };
            quote!(let options = options.mode(#krate::Mode::#variant);)
        });
        let max_workers = self
            .max_workers
            .map(|(n, _)| quote!(let options = options.max_workers(#n);));
        let load_balancing = self.load_balancing.map(|(lb, span)| {
            let variant = match lb {
                LoadBalancingArg::RoundRobin => quote_spanned!(span=> RoundRobin),
                LoadBalancingArg::LeastActive => quote_spanned!(span=> LeastActive),
                LoadBalancingArg::LeastTotal => quote_spanned!(span=> LeastTotal),
                LoadBalancingArg::Random => quote_spanned!(span=> Random),
            };
            quote!(let options = options.load_balancing(#krate::LoadBalancing::#variant);)
        });
        quote!(#mode #max_workers #load_balancing)
    }

    /// The path expansions are rooted at (`::concurry` unless `crate = ..` says otherwise).
    pub(crate) fn crate_path(&self) -> TokenStream {
        match &self.krate {
            Some((path, _)) => path.to_token_stream(),
            None => quote::quote!(::concurry),
        }
    }
}

/// Sets `slot` unless it is already set, in which case reports a duplicate at the key.
fn set_once<T>(
    cx: &mut Ctxt,
    slot: &mut Option<(T, Span)>,
    (key, key_span): (&str, Span),
    value: T,
    span: Span,
) {
    if slot.is_some() {
        cx.syn_error(syn::Error::new(
            key_span,
            format!("duplicate `{key}` option; set it once"),
        ));
    } else {
        *slot = Some((value, span));
    }
}

/// Parses `#[worker(..)]`'s arguments. A syntax error is fatal (`Err`); bad keys and values are
/// recorded in `cx` and parsing goes on.
pub(crate) fn parse(cx: &mut Ctxt, tokens: TokenStream) -> syn::Result<WorkerArgs> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated
        .parse2(tokens)
        .map_err(|e| {
            syn::Error::new(
                e.span(),
                format!(
                    "{e}; `#[worker(..)]` takes `key = value` options, like `#[worker(mode = \"thread\", max_workers = 4)]`"
                ),
            )
        })?;
    let mut args = WorkerArgs::default();
    for meta in metas {
        let path = meta.path();
        let key = path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_else(|| path.to_token_stream().to_string().replace(' ', ""));
        if !KEYS.contains(&key.as_str()) {
            cx.error_spanned_by(path, unknown_key_message(&key));
            continue;
        }
        if key == "remote" {
            match &meta {
                Meta::Path(p) => set_once(cx, &mut args.remote, ("remote", p.span()), (), p.span()),
                _ => cx.error_spanned_by(&meta, "`remote` is a flag; write `#[worker(remote)]`"),
            }
            continue;
        }
        let value = match &meta {
            Meta::NameValue(nv) => &nv.value,
            _ => {
                cx.error_spanned_by(&meta, format!("expected `{key} = ..`; {}", example(&key)));
                continue;
            }
        };
        let span = value.span();
        let key_span = path.span();
        match key.as_str() {
            "crate" => match value {
                Expr::Path(p) if p.qself.is_none() => {
                    set_once(cx, &mut args.krate, ("crate", key_span), p.path.clone(), span);
                }
                Expr::Lit(syn::ExprLit {
                    lit: Lit::Str(s), ..
                }) => match s.parse::<syn::Path>() {
                    Ok(p) => set_once(cx, &mut args.krate, ("crate", key_span), p, span),
                    Err(_) => cx.error_spanned_by(value, "expected a path; write `crate = ::my_concurry`"),
                },
                _ => cx.error_spanned_by(value, "expected a path; write `crate = ::my_concurry`"),
            },
            "mode" => match str_value(value) {
                Some(s) => match parse_mode(&s) {
                    Some(m) => set_once(cx, &mut args.mode, ("mode", key_span), m, span),
                    None => cx.error_spanned_by(
                        value,
                        format!(
                            "unknown mode `\"{s}\"`; expected one of: `\"sync\"`, `\"thread\"`, `\"async\"`, `\"process\"`"
                        ),
                    ),
                },
                None => cx.error_spanned_by(
                    value,
                    "expected a string; write `mode = \"thread\"` (or \"sync\", \"async\", \"process\")",
                ),
            },
            "max_workers" => match value {
                Expr::Lit(syn::ExprLit {
                    lit: Lit::Int(i), ..
                }) => match i.base10_parse::<usize>() {
                    Ok(0) => cx.error_spanned_by(
                        value,
                        "`max_workers` must be at least 1; write `max_workers = 1` or more",
                    ),
                    Ok(n) => set_once(cx, &mut args.max_workers, ("max_workers", key_span), n, span),
                    Err(_) => cx.error_spanned_by(
                        value,
                        format!("`max_workers = {i}` does not fit in a `usize`; use a smaller positive integer"),
                    ),
                },
                _ => cx.error_spanned_by(
                    value,
                    format!(
                        "expected a positive integer, found `{}`; write `max_workers = 4`",
                        value.to_token_stream()
                    ),
                ),
            },
            "load_balancing" => match str_value(value) {
                Some(s) => match parse_load_balancing(&s) {
                    Some(lb) => set_once(cx, &mut args.load_balancing, ("load_balancing", key_span), lb, span),
                    None => cx.error_spanned_by(
                        value,
                        format!(
                            "unknown load balancing `\"{s}\"`; expected one of: `\"round_robin\"`, `\"least_active\"`, `\"least_total\"`, `\"random\"`"
                        ),
                    ),
                },
                None => cx.error_spanned_by(
                    value,
                    "expected a string; write `load_balancing = \"round_robin\"` (or \"least_active\", \"least_total\", \"random\")",
                ),
            },
            "name" => match str_value(value) {
                Some(s) => set_once(cx, &mut args.name, ("name", key_span), s, span),
                None => cx.error_spanned_by(value, "expected a string; write `name = \"my-pool\"`"),
            },
            _ => {}
        }
    }
    Ok(args)
}

fn str_value(value: &Expr) -> Option<String> {
    match value {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.value()),
        _ => None,
    }
}

fn example(key: &str) -> &'static str {
    match key {
        "crate" => "write `crate = ::concurry`",
        "mode" => "write `mode = \"thread\"`",
        "max_workers" => "write `max_workers = 4`",
        "load_balancing" => "write `load_balancing = \"round_robin\"`",
        _ => "write `name = \"my-pool\"`",
    }
}

/// "unknown option `foo`; expected one of: …", plus a hint for a known misspelling.
pub(crate) fn unknown_key_message(key: &str) -> String {
    let expected = KEYS
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut message = format!("unknown option `{key}`; expected one of: {expected}");
    if let Some((_, right)) = HINTS.iter().find(|(wrong, _)| *wrong == key) {
        message.push_str(&format!(" (`{key}` is spelled `{right}`)"));
    }
    message
}

/// The names `"..".parse::<concurry::Mode>()` accepts, so a mode from a config file is
/// spelled the same in the attribute.
fn parse_mode(s: &str) -> Option<ModeArg> {
    match s {
        "sync" | "inline" | "synchronous" => Some(ModeArg::Sync),
        "thread" | "threads" | "threading" => Some(ModeArg::Thread),
        "async" | "asyncio" | "tokio" => Some(ModeArg::Async),
        "process" | "processes" | "multiprocessing" => Some(ModeArg::Process),
        _ => None,
    }
}

fn parse_load_balancing(s: &str) -> Option<LoadBalancingArg> {
    match s {
        "round_robin" | "rr" => Some(LoadBalancingArg::RoundRobin),
        "least_active" => Some(LoadBalancingArg::LeastActive),
        "least_total" => Some(LoadBalancingArg::LeastTotal),
        "random" => Some(LoadBalancingArg::Random),
        _ => None,
    }
}
