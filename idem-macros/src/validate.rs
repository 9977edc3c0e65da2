//! Every check on the annotated function, each spanned at the token at
//! fault. Type-level rules (a key must be hashable and owned, values and
//! errors shareable, a detached body `Send`) are left to the type checker,
//! which sees through aliases: see `idem::__private`.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::visit::Visit;
use syn::{FnArg, ItemFn, Pat, ReturnType, Type};

use crate::args::{Args, Errors};

/// Skips the parts of a type whose references and lifetimes are local to
/// a signature: a bare fn type (`fn(&str) -> usize`), the parenthesised
/// arguments of an `Fn` trait (`dyn Fn(&str) -> bool`), and a bound under a
/// higher-ranked binder (`for<'x> Fn(&'x str)`). Such a type is `'static`
/// and owns its data whatever references its signature mentions.
macro_rules! skip_signatures {
    () => {
        fn visit_type_bare_fn(&mut self, _: &'ast syn::TypeBareFn) {}

        fn visit_parenthesized_generic_arguments(
            &mut self,
            _: &'ast syn::ParenthesizedGenericArguments,
        ) {
        }

        fn visit_trait_bound(&mut self, b: &'ast syn::TraitBound) {
            if b.lifetimes.is_none() {
                syn::visit::visit_trait_bound(self, b);
            }
        }
    };
}

/// Checks the function against the options; collects every error.
pub(crate) fn check(func: &ItemFn, args: &Args) -> syn::Result<()> {
    let mut errors = Errors::default();
    let sig = &func.sig;

    if let Some(c) = sig.constness {
        errors.push(syn::Error::new(
            c.span,
            "`#[idempotent]` cannot apply to a `const fn`: coalescing and storing results \
             happen at run time, in an `async fn`; remove `const` (and make it `async`)",
        ));
    } else if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            "`#[idempotent]` applies to `async fn`s: callers coalesced on one execution wait \
             for it; add `async`",
        ));
    }

    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                if let Some(e) = receiver(r) {
                    errors.push(e);
                }
            }
            FnArg::Typed(arg) => MutArgCheck(&mut errors).visit_type(&arg.ty),
        }
    }

    if let ReturnType::Type(_, ty) = &sig.output {
        let mut v = ReturnTypeCheck(&mut errors);
        v.visit_type(ty);
    }

    let mut names = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => names.push(syn::Ident::new("self", r.self_token.span)),
            FnArg::Typed(arg) => bindings(&arg.pat, &mut names),
        }
    }
    let settings = [
        ("ttl", args.ttl.as_ref().map(|o| &o.value.0)),
        ("max_entries", args.max_entries.as_ref().map(|o| &o.value.0)),
        (
            "max_in_flight",
            args.max_in_flight.as_ref().map(|o| &o.value.0),
        ),
    ];
    for (option, value) in settings {
        if let Some(value) = value {
            setting(option, value, &names, &mut errors);
        }
    }

    if let Some(fence) = &args.fence {
        let fence = &fence.value.name;
        if names.contains(fence) {
            errors.push(syn::Error::new(
                fence.span(),
                format!(
                    "`fence = {fence}` would hide the argument `{fence}` from the body, which \
                     gets the `Fence` by that name: pick another name (e.g. `fence = fence`)"
                ),
            ));
        }
    }

    if args.detached.is_some() {
        detached(func, &mut errors);
    }
    errors.finish()
}

fn receiver(r: &syn::Receiver) -> Option<syn::Error> {
    /// The first reference in a receiver's type (`Pin<&mut Self>`).
    struct FirstRef(Option<bool>);
    impl<'ast> Visit<'ast> for FirstRef {
        skip_signatures!();
        fn visit_type_reference(&mut self, t: &'ast syn::TypeReference) {
            self.0.get_or_insert(t.mutability.is_some());
        }
    }
    let mut first_ref = FirstRef(None);
    first_ref.visit_type(&r.ty);
    match (&*r.ty, first_ref.0) {
        (Type::Reference(t), _) if t.mutability.is_none() => None,
        (_, Some(true)) => Some(syn::Error::new_spanned(
            r,
            "`#[idempotent]` methods take `&self`, not `&mut self`: coalesced callers share one \
             execution, which cannot hold each caller's exclusive borrow",
        )),
        (_, Some(false)) => Some(syn::Error::new_spanned(
            r,
            "`#[idempotent]` methods must take `&self` (or `self: &Self`): other receivers that \
             borrow, such as `self: Pin<&Self>`, are not supported; take `&self`",
        )),
        _ => Some(syn::Error::new(
            r.self_token.span,
            "`#[idempotent]` methods take `&self`: a method that takes `self` by value \
             (or `self: Box<Self>`, `self: Arc<Self>`, ...) consumes a different receiver in \
             each call, and coalesced callers would run the body with only one of them; \
             take `&self`, or make it a function with the service as an argument",
        )),
    }
}

/// An argument that holds a `&mut` anywhere (`&mut T`, `Option<&mut T>`,
/// `Pin<&mut T>`, `(&mut T, u8)`): only the first of the coalesced callers
/// runs the body, so the others' would silently not be written to.
struct MutArgCheck<'e>(&'e mut Errors);

impl<'ast> Visit<'ast> for MutArgCheck<'_> {
    skip_signatures!();

    fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
        let Some(m) = r.mutability else {
            return syn::visit::visit_type_reference(self, r);
        };
        let and = r.and_token;
        self.0.push(syn::Error::new_spanned(
            quote::quote!(#and #m),
            "`#[idempotent]` functions cannot take `&mut` arguments: only the first of the \
             coalesced callers runs the body, so the others' arguments would silently not be \
             written to",
        ));
    }
}

/// A value stored in a table and handed to other callers must not borrow.
struct ReturnTypeCheck<'e>(&'e mut Errors);

impl<'ast> Visit<'ast> for ReturnTypeCheck<'_> {
    skip_signatures!();

    fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
        self.0.push(syn::Error::new(
            t.impl_token.span,
            "`#[idempotent]` functions cannot return `impl Trait`: results are stored and \
             cloned, so their type must be nameable; return the concrete type (or \
             `Arc<dyn Trait + Send + Sync>`)",
        ));
    }

    fn visit_type_reference(&mut self, t: &'ast syn::TypeReference) {
        let is_static = t.lifetime.as_ref().is_some_and(|l| l.ident == "static");
        if !is_static {
            self.0.push(syn::Error::new(
                t.and_token.span,
                "`#[idempotent]` functions cannot return a borrow: the result is stored and \
                 handed to other callers, so it must own its data (e.g. `String` rather than \
                 `&str`, or `Arc<T>`)",
            ));
            return;
        }
        syn::visit::visit_type_reference(self, t);
    }

    fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
        if l.ident != "static" {
            self.0.push(syn::Error::new(
                l.span(),
                format!(
                    "`#[idempotent]` functions cannot return a type that borrows (`{l}`): the \
                     result is stored and handed to other callers, so it must own its data"
                ),
            ));
        }
    }
}

/// A setting (`ttl`, `max_entries`, `max_in_flight`) is evaluated once, when the table is
/// created: one that used `self` or an argument would give every call the
/// first call's value. The first such name is an error. (The expansion
/// also makes the setting a fn pointer, which catches names hidden in a
/// macro's arguments, with rustc's less direct error.)
fn setting(option: &str, value: &TokenStream, names: &[syn::Ident], errors: &mut Errors) {
    struct Uses<'n>(&'n [syn::Ident], Option<syn::Ident>);
    impl<'ast> Visit<'ast> for Uses<'_> {
        fn visit_expr_path(&mut self, p: &'ast syn::ExprPath) {
            if let Some(ident) = p.path.get_ident().filter(|_| p.qself.is_none()) {
                if self.1.is_none() && self.0.contains(ident) {
                    self.1 = Some(ident.clone());
                }
            }
            syn::visit::visit_expr_path(self, p);
        }
    }
    let Ok(expr) = syn::parse2::<syn::Expr>(value.clone()) else {
        return;
    };
    let mut uses = Uses(names, None);
    uses.visit_expr(&expr);
    if let Some(name) = uses.1 {
        errors.push(syn::Error::new(
            name.span(),
            format!(
                "`{option}` is evaluated once, when the function's table is created, so it \
                 cannot use `{name}`: every call would get the first call's value; use a \
                 constant, a `static`, or an expression without `self` and the arguments"
            ),
        ));
    }
}

/// `detached` work runs on its own task: it may not borrow from the caller.
fn detached(func: &ItemFn, errors: &mut Errors) {
    let body = func
        .block
        .stmts
        .iter()
        .fold(TokenStream::new(), |mut ts, s| {
            quote::ToTokens::to_tokens(s, &mut ts);
            ts
        });
    let has_receiver = matches!(func.sig.inputs.first(), Some(FnArg::Receiver(_)));
    if let Some(span) = find_ident(&body, "self").filter(|_| has_receiver) {
        errors.push(syn::Error::new(
            span,
            "a `detached` body runs on its own task and must be `'static`, so it cannot use \
             `self`, which is borrowed: move what the body needs into owned arguments (e.g. \
             an `Arc` of the service), or remove `detached`",
        ));
    }
    for input in &func.sig.inputs {
        let FnArg::Typed(arg) = input else { continue };
        if !borrows(&arg.ty) {
            continue;
        }
        let mut names = Vec::new();
        bindings(&arg.pat, &mut names);
        if let Some(name) = names
            .iter()
            .find(|n| find_ident(&body, &n.to_string()).is_some())
        {
            errors.push(syn::Error::new_spanned(
                &arg.ty,
                format!(
                    "a `detached` body runs on its own task and must be `'static`, but it uses \
                     `{name}`, which borrows: take an owned type (e.g. `String` rather than \
                     `&str`), or remove `detached`"
                ),
            ));
        }
    }
}

/// Whether a type is, or holds, a non-`'static` borrow, as far as its
/// tokens say.
fn borrows(ty: &Type) -> bool {
    struct Borrows(bool);
    impl<'ast> Visit<'ast> for Borrows {
        skip_signatures!();

        fn visit_type_reference(&mut self, t: &'ast syn::TypeReference) {
            match &t.lifetime {
                Some(l) if l.ident == "static" => syn::visit::visit_type_reference(self, t),
                _ => self.0 = true,
            }
        }
        fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
            if l.ident != "static" {
                self.0 = true;
            }
        }
    }
    let mut v = Borrows(false);
    v.visit_type(ty);
    v.0
}

/// The names a pattern binds.
pub(crate) fn bindings(pat: &Pat, out: &mut Vec<syn::Ident>) {
    struct Names<'o>(&'o mut Vec<syn::Ident>);
    impl<'ast> Visit<'ast> for Names<'_> {
        fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
            self.0.push(p.ident.clone());
            syn::visit::visit_pat_ident(self, p);
        }
    }
    Names(out).visit_pat(pat);
}

/// The first use of an identifier in a token stream, macro arguments and
/// names captured by format strings (`"{name}"`) included.
pub(crate) fn find_ident(tokens: &TokenStream, name: &str) -> Option<Span> {
    tokens.clone().into_iter().find_map(|tt| match tt {
        TokenTree::Ident(i) if i == name => Some(i.span()),
        TokenTree::Group(g) => find_ident(&g.stream(), name),
        TokenTree::Literal(l) => {
            let text = l.to_string();
            // Plain and raw strings (`"{name}"`, `r"{name}"`, `r#"{name}"#`).
            let is_str = text.starts_with('"') || text.starts_with("r\"") || text.starts_with("r#");
            let captured = is_str
                && (text.contains(&format!("{{{name}}}"))
                    || text.contains(&format!("{{{name}:"))
                    || text.contains(&format!("{name}$")));
            captured.then(|| l.span())
        }
        _ => None,
    })
}
