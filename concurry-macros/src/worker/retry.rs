//! `#[retry(..)]` on a method inside a `#[worker]` impl: an inert attribute `#[worker]`
//! consumes. `#[retry(never)]`, or any of `attempts = N`, `on = path`, `until = path`.

use proc_macro2::Span;
use syn::{Attribute, ImplItemFn, LitInt, Path};

use crate::ctxt::Ctxt;

/// The name of the attribute.
pub(crate) const ATTR: &str = "retry";

/// A method's `#[retry(..)]`, parsed.
#[derive(Default)]
pub(crate) struct RetryAttr {
    pub(crate) never: bool,
    /// Total attempts (`attempts = 5`: the first call and 4 retries).
    pub(crate) attempts: Option<u32>,
    /// `fn(&E) -> bool` deciding which of the method's errors to retry.
    pub(crate) on: Option<Path>,
    /// `fn(&T) -> bool` accepting outputs.
    pub(crate) until: Option<Path>,
}

const KEYS: &str = "`never`, `attempts = N`, `on = path::to::fn`, `until = path::to::fn`";

/// True for `#[retry(..)]` and `#[concurry::retry(..)]` (the latter is an error).
pub(crate) fn is_retry_attr(a: &Attribute) -> bool {
    a.path().segments.last().is_some_and(|s| s.ident == ATTR)
}

/// Parses every `#[retry]` of `f`, reporting misuse at its token.
pub(crate) fn parse(cx: &mut Ctxt, f: &ImplItemFn) -> RetryAttr {
    parse_attrs(cx, &f.attrs, "the enclosing `#[worker]`")
}

/// Parses every `#[retry]` among `attrs` (of a worker method, or of a `#[task]` function:
/// `reader` names which macro reads them, for the error messages).
pub(crate) fn parse_attrs(cx: &mut Ctxt, attrs: &[Attribute], reader: &str) -> RetryAttr {
    let mut out = RetryAttr::default();
    let mut seen: Option<Span> = None;
    for attr in attrs.iter().filter(|a| is_retry_attr(a)) {
        if !attr.path().is_ident(ATTR) {
            cx.error_spanned_by(
                attr.path(),
                format!("write `#[retry(..)]` without a path: it is read by {reader}, not a macro of its own"),
            );
            continue;
        }
        if seen.is_some() {
            cx.error_spanned_by(
                attr,
                "duplicate `#[retry]` attribute; put every setting in one `#[retry(..)]`",
            );
            continue;
        }
        seen = Some(proc_macro2::Span::call_site());
        let mut any = false;
        let result = attr.parse_nested_meta(|meta| {
            any = true;
            let key = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
            match key.as_str() {
                "never" => {
                    out.never = true;
                    Ok(())
                }
                "attempts" => {
                    let lit: LitInt = meta.value()?.parse()?;
                    let n: u32 = lit.base10_parse()?;
                    if n == 0 {
                        return Err(syn::Error::new_spanned(
                            &lit,
                            "`attempts` counts the first call too, so it must be at least 1 (1 = no retries)",
                        ));
                    }
                    set_once(&mut out.attempts, n, &meta.path)
                }
                "on" => {
                    let p: Path = meta.value()?.parse()?;
                    set_once(&mut out.on, p, &meta.path)
                }
                "until" => {
                    let p: Path = meta.value()?.parse()?;
                    set_once(&mut out.until, p, &meta.path)
                }
                "num_retries" | "retries" => Err(meta.error(format!(
                    "`#[retry]` counts attempts, not retries: write `attempts = N` (N = retries + 1); expected one of {KEYS}"
                ))),
                _ => Err(meta.error(format!("unknown `#[retry]` setting `{key}`; expected one of {KEYS}"))),
            }
        });
        if let Err(e) = result {
            cx.syn_error(e);
        } else if !any {
            cx.error_spanned_by(attr, format!("`#[retry]` needs a setting: one of {KEYS}"));
        }
        if out.never && (out.attempts.is_some() || out.on.is_some() || out.until.is_some()) {
            cx.error_spanned_by(
                attr,
                "`#[retry(never)]` cannot be combined with other settings; the method runs once",
            );
        }
    }
    out
}

fn set_once<T>(slot: &mut Option<T>, value: T, key: &Path) -> syn::Result<()> {
    if slot.is_some() {
        let name = key.get_ident().map(ToString::to_string).unwrap_or_default();
        return Err(syn::Error::new_spanned(
            key,
            format!("duplicate `{name}` setting in `#[retry]`"),
        ));
    }
    *slot = Some(value);
    Ok(())
}
