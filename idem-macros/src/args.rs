//! Parsing the attribute's options: `key = <expr>`, `fingerprint = <expr>`,
//! `ttl = "30s" | <expr>`, `max_entries = <expr>`, `eviction = "never" | "adaptive"`,
//! `max_in_flight = <expr>`, `flight = <expr>`, `fence = <name>`, `detached`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, Token};

use crate::duration;

mod kw {
    syn::custom_keyword!(key);
    syn::custom_keyword!(fingerprint);
    syn::custom_keyword!(ttl);
    syn::custom_keyword!(max_entries);
    syn::custom_keyword!(eviction);
    syn::custom_keyword!(max_in_flight);
    syn::custom_keyword!(flight);
    syn::custom_keyword!(fence);
    syn::custom_keyword!(detached);
}

/// What every error about the options ends with.
pub(crate) const ACCEPTED: &str = "accepted options: `key = <expr>` (required), \
`fingerprint = <expr>`, `ttl = \"30s\"` or `ttl = <Duration>`, `max_entries = <usize>`, \
`eviction = \"never\"` or `eviction = \"adaptive\"`, `max_in_flight = <usize>`, \
`flight = <SingleFlight or Durable>`, `fence = <name>` (with a `Durable`), `detached`";

/// The options, parsed and checked against each other.
pub(crate) struct Args {
    /// The key expression; `None` only while parsing.
    pub(crate) key: Option<Expr>,
    /// `fingerprint = <expr>`: what the call asks for, checked against the
    /// execution or stored result its key finds.
    pub(crate) fingerprint: Option<Opt<Expr>>,
    pub(crate) ttl: Option<Opt<Ttl>>,
    pub(crate) max_entries: Option<Opt<MaxEntries>>,
    pub(crate) eviction: Option<Opt<Eviction>>,
    pub(crate) max_in_flight: Option<Opt<MaxInFlight>>,
    pub(crate) flight: Option<Opt<Expr>>,
    /// `fence = name`: the name the body gets the `Durable`'s `Fence` by.
    pub(crate) fence: Option<Opt<Fence>>,
    pub(crate) detached: Option<kw::detached>,
    /// The first option that lets the table refuse calls
    /// (`eviction = "never"`, `max_in_flight`), from its name to its value's
    /// last token: where a return type that cannot carry refusals is
    /// reported.
    pub(crate) refusing: Option<(Span, Span)>,
}

/// An option's value and the span of its name.
pub(crate) struct Opt<T> {
    pub(crate) name: Span,
    pub(crate) value: T,
}

/// `ttl = ...`: a `Duration` expression, from a literal or as written.
pub(crate) struct Ttl(pub(crate) TokenStream);

/// `max_entries = ...`: a `usize` expression, checked if it is a literal.
pub(crate) struct MaxEntries(pub(crate) TokenStream);

/// `eviction = "never" | "adaptive"`: a string, so that the macro knows
/// whether the table can refuse calls.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Eviction {
    Adaptive,
    Never,
}

/// `max_in_flight = ...`: a `usize` expression, checked if it is a literal.
pub(crate) struct MaxInFlight(pub(crate) TokenStream);

/// `fence = name`: the name, and the span of the option's last token
/// (where an executor without a fence is reported, from the option's name).
pub(crate) struct Fence {
    pub(crate) name: syn::Ident,
    pub(crate) last: Span,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args {
            key: None,
            fingerprint: None,
            ttl: None,
            max_entries: None,
            eviction: None,
            max_in_flight: None,
            flight: None,
            fence: None,
            detached: None,
            refusing: None,
        };
        let mut key_name = None;
        let mut errors = Errors::default();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::key) {
                let name = input.parse::<kw::key>()?;
                let value = value(input, "key", "<expr>")?;
                if key_name.is_some() {
                    errors.push(repeated(name.span, "key"));
                }
                key_name = Some(name.span);
                args.key = Some(value);
            } else if lookahead.peek(kw::fingerprint) {
                let name = input.parse::<kw::fingerprint>()?.span;
                let value = value(input, "fingerprint", "(order.amount, &order.currency)")?;
                let opt = Opt { name, value };
                set(&mut args.fingerprint, opt, "fingerprint", &mut errors);
            } else if lookahead.peek(kw::ttl) {
                let name = input.parse::<kw::ttl>()?.span;
                let value = value(input, "ttl", "\"30s\"")?;
                match ttl(value) {
                    Ok(value) => set(&mut args.ttl, Opt { name, value }, "ttl", &mut errors),
                    Err(e) => errors.push(e),
                }
            } else if lookahead.peek(kw::max_entries) {
                let name = input.parse::<kw::max_entries>()?.span;
                let value = value(input, "max_entries", "10_000")?;
                match max_entries(value) {
                    Ok(value) => set(
                        &mut args.max_entries,
                        Opt { name, value },
                        "max_entries",
                        &mut errors,
                    ),
                    Err(e) => errors.push(e),
                }
            } else if lookahead.peek(kw::eviction) {
                let name = input.parse::<kw::eviction>()?.span;
                let value = value(input, "eviction", "\"never\"")?;
                match eviction(&value) {
                    Ok(mode) => {
                        if mode == Eviction::Never {
                            args.refusing.get_or_insert((name, last_span(&value)));
                        }
                        let opt = Opt { name, value: mode };
                        set(&mut args.eviction, opt, "eviction", &mut errors);
                    }
                    Err(e) => errors.push(e),
                }
            } else if lookahead.peek(kw::max_in_flight) {
                let name = input.parse::<kw::max_in_flight>()?.span;
                let value = value(input, "max_in_flight", "100")?;
                let last = last_span(&value);
                match max_in_flight(value) {
                    Ok(value) => {
                        args.refusing.get_or_insert((name, last));
                        let opt = Opt { name, value };
                        set(&mut args.max_in_flight, opt, "max_in_flight", &mut errors);
                    }
                    Err(e) => errors.push(e),
                }
            } else if lookahead.peek(kw::flight) {
                let name = input.parse::<kw::flight>()?.span;
                let value = value(input, "flight", "self.flight")?;
                set(&mut args.flight, Opt { name, value }, "flight", &mut errors);
            } else if lookahead.peek(kw::fence) {
                let name = input.parse::<kw::fence>()?.span;
                let value = value(input, "fence", "fence")?;
                match fence(&value) {
                    Ok(value) => set(&mut args.fence, Opt { name, value }, "fence", &mut errors),
                    Err(e) => errors.push(e),
                }
            } else if lookahead.peek(kw::detached) {
                let name = input.parse::<kw::detached>()?;
                if input.peek(Token![=]) {
                    return Err(syn::Error::new(
                        input.span(),
                        format!("`detached` takes no value: write `detached` alone; {ACCEPTED}"),
                    ));
                }
                if args.detached.is_some() {
                    errors.push(repeated(name.span, "detached"));
                }
                args.detached = Some(name);
            } else if input.peek(syn::Ident) {
                let ident: syn::Ident = input.parse()?;
                return Err(syn::Error::new(
                    ident.span(),
                    format!("unknown option `{ident}`; {ACCEPTED}"),
                ));
            } else {
                let e = lookahead.error();
                return Err(syn::Error::new(
                    e.span(),
                    format!("expected an option; {ACCEPTED}"),
                ));
            }
            if !input.is_empty() {
                input.parse::<Token![,]>().map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        format!("expected `,` between options; {ACCEPTED}"),
                    )
                })?;
            }
        }

        if args.key.is_none() {
            errors.push(syn::Error::new(
                Span::call_site(),
                format!(
                    "missing `key = <expr>`: the key names what makes two calls the same \
                     (e.g. `#[idempotent(key = order.id)]`); {ACCEPTED}"
                ),
            ));
        }
        if args.flight.is_some() {
            for (opt, name) in [
                (args.ttl.as_ref().map(|o| o.name), "ttl"),
                (args.max_entries.as_ref().map(|o| o.name), "max_entries"),
                (args.eviction.as_ref().map(|o| o.name), "eviction"),
                (args.max_in_flight.as_ref().map(|o| o.name), "max_in_flight"),
            ] {
                if let Some(span) = opt {
                    errors.push(syn::Error::new(
                        span,
                        format!(
                            "`{name}` cannot be combined with `flight`: the table passed to \
                             `flight` has its own settings (set them where it is built, with \
                             `SingleFlight::builder()` or `Durable::builder()`)"
                        ),
                    ));
                }
            }
        } else {
            if let Some(fence) = &args.fence {
                errors.push(syn::Error::new(
                    fence.name,
                    "`fence` binds the fencing token of a `Durable`'s lease, but there is no \
                     `flight`: add `flight = <an idem::durable::Durable>` (e.g. \
                     `flight = self.payments`), or remove `fence`",
                ));
            }
            if let (Some(max), None) = (&args.max_entries, &args.ttl) {
                errors.push(syn::Error::new(
                    max.name,
                    "`max_entries` bounds the stored results, but without `ttl` nothing is \
                     stored: add a `ttl = \"...\"`, or remove `max_entries`",
                ));
            }
            if let (Some(eviction), None) = (&args.eviction, &args.max_entries) {
                errors.push(syn::Error::new(
                    eviction.name,
                    "`eviction` says what the table does when it holds `max_entries` results, \
                     but there is no `max_entries`: nothing is bounded; add `max_entries = N` \
                     (with a `ttl`), or remove `eviction`",
                ));
            }
        }
        if let (Some(fence), Some(_)) = (&args.fence, &args.detached) {
            errors.push(syn::Error::new(
                fence.name,
                "`fence` cannot be combined with `detached`: a fence is a `Durable`'s, and \
                 `detached` takes a `SingleFlight` (`#[idempotent]` runs a `Durable`'s body in \
                 the caller's future); remove one of them",
            ));
        }
        errors.finish()?;
        Ok(args)
    }
}

impl Args {
    /// The key expression (present once parsing succeeded).
    pub(crate) fn key(&self) -> &Expr {
        self.key
            .as_ref()
            .expect("parsing checks that a key is given")
    }
}

/// `= <expr>` after an option's name.
fn value(input: ParseStream<'_>, name: &str, example: &str) -> syn::Result<Expr> {
    let eq = input.parse::<Token![=]>().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("expected `=` after `{name}`, as in `{name} = {example}`; {ACCEPTED}"),
        )
    })?;
    if input.is_empty() || input.peek(Token![,]) {
        return Err(syn::Error::new(
            eq.span,
            format!("expected a value after `{name} =`, as in `{name} = {example}`; {ACCEPTED}"),
        ));
    }
    input.parse::<Expr>()
}

fn set<T>(slot: &mut Option<Opt<T>>, opt: Opt<T>, name: &str, errors: &mut Errors) {
    if slot.is_some() {
        errors.push(repeated(opt.name, name));
    }
    *slot = Some(opt);
}

fn repeated(span: Span, name: &str) -> syn::Error {
    syn::Error::new(
        span,
        format!("`{name}` is given more than once; {ACCEPTED}"),
    )
}

fn ttl(value: Expr) -> syn::Result<Ttl> {
    match &value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => {
            let d = duration::parse(&s.value()).map_err(|e| {
                syn::Error::new(
                    s.span(),
                    format!("invalid `ttl` {}: {e}", s.to_token_stream()),
                )
            })?;
            let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
            Ok(Ttl(
                quote_spanned!(s.span()=> ::core::time::Duration::new(#secs, #nanos)),
            ))
        }
        Expr::Lit(ExprLit {
            lit: lit @ (Lit::Int(_) | Lit::Float(_)),
            ..
        }) => Err(syn::Error::new(
            value.span(),
            format!(
                "a `ttl` needs a unit: write `ttl = \"{}\"` (or `ms`, `m`, `h`, ...), or a \
                 `Duration` expression",
                in_seconds(lit)
            ),
        )),
        Expr::Lit(_) => Err(syn::Error::new(
            value.span(),
            "expected a duration: `ttl = \"30s\"`, or a `Duration` expression",
        )),
        _ => Ok(Ttl(value.into_token_stream())),
    }
}

/// A number of seconds as a `ttl = "..."` string: `5u64` is `"5s"`, `1.5`
/// is `"1500ms"` (the strings take no fractions).
fn in_seconds(lit: &Lit) -> String {
    match lit {
        Lit::Float(f) => {
            let digits = f.base10_digits();
            match digits.parse::<f64>() {
                Ok(secs) if secs.fract() != 0.0 && (secs * 1000.0).fract() == 0.0 => {
                    format!("{}ms", secs * 1000.0)
                }
                Ok(secs) if secs.fract() == 0.0 => format!("{secs}s"),
                _ => format!("{digits}s"),
            }
        }
        Lit::Int(i) => format!("{}s", i.base10_digits()),
        other => format!("{}s", other.to_token_stream()),
    }
}

fn max_entries(value: Expr) -> syn::Result<MaxEntries> {
    match &value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(n), ..
        }) => {
            let parsed: usize = n
                .base10_parse()
                .map_err(|e| syn::Error::new(n.span(), format!("invalid `max_entries`: {e}")))?;
            if parsed == 0 {
                return Err(syn::Error::new(
                    n.span(),
                    "`max_entries` must be at least 1 (to store nothing, leave out `ttl`)",
                ));
            }
            Ok(MaxEntries(quote_spanned!(n.span()=> #parsed)))
        }
        Expr::Lit(_) => Err(syn::Error::new(
            value.span(),
            "expected a number of entries: `max_entries = 10_000`, or a `usize` expression",
        )),
        _ => Ok(MaxEntries(quote!(#value))),
    }
}

fn eviction(value: &Expr) -> syn::Result<Eviction> {
    const HOW: &str = "write `eviction = \"never\"` (a result is kept for its whole ttl; when \
        `max_entries` are held, a new key is refused) or `eviction = \"adaptive\"` (the default: \
        a cache, which drops results to make room)";
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => match s.value().as_str() {
            "never" => Ok(Eviction::Never),
            "adaptive" => Ok(Eviction::Adaptive),
            other => Err(syn::Error::new(
                s.span(),
                format!("unknown `eviction` {other:?}: {HOW}"),
            )),
        },
        _ => Err(syn::Error::new_spanned(
            value,
            format!("expected a string: {HOW}"),
        )),
    }
}

fn max_in_flight(value: Expr) -> syn::Result<MaxInFlight> {
    match &value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(n), ..
        }) => {
            let parsed: usize = n
                .base10_parse()
                .map_err(|e| syn::Error::new(n.span(), format!("invalid `max_in_flight`: {e}")))?;
            if parsed == 0 {
                return Err(syn::Error::new(
                    n.span(),
                    "`max_in_flight` must be at least 1: no call could ever run (to leave \
                     running executions unbounded, remove `max_in_flight`)",
                ));
            }
            Ok(MaxInFlight(quote_spanned!(n.span()=> #parsed)))
        }
        Expr::Lit(_) => Err(syn::Error::new(
            value.span(),
            "expected a number of executions: `max_in_flight = 100`, or a `usize` expression",
        )),
        _ => Ok(MaxInFlight(quote!(#value))),
    }
}

fn fence(value: &Expr) -> syn::Result<Fence> {
    match value {
        Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => match p.path.get_ident() {
            Some(name) => Ok(Fence {
                name: name.clone(),
                last: name.span(),
            }),
            None => Err(syn::Error::new_spanned(
                value,
                "expected a name for the `Fence`, as in `fence = fence`",
            )),
        },
        _ => Err(syn::Error::new_spanned(
            value,
            "expected a name for the `Fence`, as in `fence = fence`: the body gets the lease's \
             `idem::durable::Fence` by that name",
        )),
    }
}

/// The span of an expression's last token.
fn last_span(value: &Expr) -> Span {
    value
        .to_token_stream()
        .into_iter()
        .last()
        .map_or_else(|| value.span(), |t| t.span())
}

/// Errors collected so that one compile reports them all.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}
