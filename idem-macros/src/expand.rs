//! Code generation. The expansion, commented, and the support code it
//! calls are documented in `idem/src/private/mod.rs` (`idem::__private`,
//! hidden from rustdoc); the options are documented on `idempotent`.

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Expr, Item, ItemFn, ReturnType};

use crate::args::{Args, Errors, Eviction};
use crate::validate;

/// The whole macro: parse, check, and expand, or emit the function
/// unchanged beside the errors.
pub(crate) fn idempotent(args: TokenStream, item: TokenStream) -> TokenStream {
    let func = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(func)) => func,
        Ok(other) => {
            let span = other
                .to_token_stream()
                .into_iter()
                .next()
                .map_or(Span::call_site(), |t| t.span());
            return fallback(not_a_function(span), item);
        }
        Err(_) => return fallback(not_a_function(Span::call_site()), item),
    };
    let mut errors = Errors::default();
    let args = syn::parse2::<Args>(args).map_err(|e| errors.push(e)).ok();
    if let Some(args) = &args {
        if let Err(e) = validate::check(&func, args) {
            errors.push(e);
        }
    }
    match (errors.finish(), args) {
        (Ok(()), Some(args)) => expand(&args, func),
        (Err(e), _) => fallback(e, func.into_token_stream()),
        (Ok(()), None) => unreachable!("an argument error is always recorded"),
    }
}

fn not_a_function(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        "`#[idempotent]` applies to `async fn`s with a body (free functions and `&self` methods)",
    )
}

/// The error, and the item as written: the user sees this error rather than
/// every use of a function that would otherwise be missing.
fn fallback(error: syn::Error, item: TokenStream) -> TokenStream {
    let error = error.to_compile_error();
    quote!(#error #item)
}

/// A generated local: hygienic (`Span::mixed_site`), so it can neither
/// capture nor shadow the user's names, and located at `at` for errors.
fn local(name: &str, at: Span) -> Ident {
    Ident::new(name, Span::mixed_site().located_at(at))
}

/// The first and last token spans of some tokens.
fn bounds(tokens: &impl ToTokens) -> (Span, Span) {
    let mut iter = tokens.to_token_stream().into_iter();
    let first = iter.next().map_or(Span::call_site(), |t| t.span());
    let last = iter.last().map_or(first, |t| t.span());
    (first, last)
}

/// `(receiver).method(args)`, spanned so that an error about the call
/// underlines `first..last` (rustc joins an expression's first and last
/// token spans): the receiver's parentheses start at `first`, the
/// argument list ends at `last`.
fn spanned_call(
    receiver: TokenStream,
    method: &str,
    args: TokenStream,
    (first, last): (Span, Span),
) -> TokenStream {
    let mut receiver = Group::new(Delimiter::Parenthesis, receiver);
    receiver.set_span(first);
    let method = Ident::new(method, first);
    let mut args = Group::new(Delimiter::Parenthesis, args);
    args.set_span(last);
    quote_spanned!(first=> #receiver.#method #args)
}

/// Whether an expression denotes a place (a variable, a field, an index, a
/// dereference): such a key is cloned, so the body can still use it. Any
/// other expression's value is the key.
fn is_place(e: &Expr) -> bool {
    match e {
        Expr::Path(_) => true,
        // `parse(name).id` is not a place: its base is a value to compute.
        Expr::Field(f) => is_place(&f.base),
        Expr::Index(i) => is_place(&i.expr),
        Expr::Unary(u) => matches!(u.op, syn::UnOp::Deref(_)),
        Expr::Paren(p) => is_place(&p.expr),
        Expr::Group(g) => is_place(&g.expr),
        _ => false,
    }
}

/// Whether `e.method()` calls the method on all of `e`: a path, a field,
/// an index, a call, a method call, a literal, or anything already
/// delimited. (`&x`, `*x`, `a + b`, `x as T` need parentheses.)
fn is_postfix(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Path(_)
            | Expr::Field(_)
            | Expr::Index(_)
            | Expr::Call(_)
            | Expr::MethodCall(_)
            | Expr::Lit(_)
            | Expr::Paren(_)
            | Expr::Tuple(_)
            | Expr::Array(_)
            | Expr::Macro(_)
            | Expr::Block(_)
            | Expr::Try(_)
            | Expr::Await(_)
    )
}

/// An expression without the parentheses (and invisible groups) around it.
fn strip_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => strip_parens(&p.expr),
        Expr::Group(g) => strip_parens(&g.expr),
        e => e,
    }
}

/// The root of a place (`order` in `order.items[0].id`), if it is a plain
/// name.
fn place_root(e: &Expr) -> Option<&Ident> {
    match e {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident(),
        Expr::Field(f) => place_root(&f.base),
        Expr::Index(i) => place_root(&i.expr),
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)) => place_root(&u.expr),
        Expr::Paren(p) => place_root(&p.expr),
        Expr::Group(g) => place_root(&g.expr),
        _ => None,
    }
}

/// A clone of a place's value, `::idem::__private::key_probe::key_of(&(place))`, bound
/// to a local first: were the call the argument itself, rustc would infer
/// `key_of`'s type from the parameter it is passed to, and `f(name)` with
/// `name: &String` and `f(&str)` would no longer coerce.
fn cloned(e: &Expr) -> Expr {
    let part = Ident::new("__idem_part", Span::mixed_site());
    let clone = quote_spanned!(e.span()=> ::idem::__private::key_probe::key_of(&(#e)));
    Expr::Verbatim(quote_spanned! {Span::mixed_site()=>
        {
            #[allow(clippy::let_and_return)]
            let #part = #clone;
            #part
        }
    })
}

/// `::idem::__private::<driver>(<args>).await`, located at `span`: with
/// `detached`, the keyword, so that a body that is not `Send` or not
/// `'static` is reported there.
fn driver_call(driver: TokenStream, args: TokenStream, span: Span) -> TokenStream {
    let path = quote_spanned!(span=> ::idem::__private::#driver);
    let mut args = Group::new(Delimiter::Parenthesis, args);
    args.set_span(span);
    quote_spanned!(span=> #path #args .await)
}

/// A key expression as an owned value that leaves the arguments to the
/// body: a place is cloned, and so is every place rooted at an argument in
/// a position that would move it (see [`Owned`]). Any other expression's
/// value is used as it is.
fn owned(e: &Expr, args: &[Ident], used: &[Ident]) -> TokenStream {
    let mut e = e.clone();
    Owned { args, used }.top(&mut e);
    e.into_token_stream()
}

/// Rewrites a key expression so that it moves no argument: a place rooted
/// at an argument (or `self`) in a value position — a call's or a method
/// call's argument, a struct literal's field (`K { name }` included) or
/// base, an array's or a tuple's element, an arithmetic operand — is
/// cloned. A method call's receiver is left as it is (method calls
/// auto-ref), and so is anything behind `&`. Macro invocations
/// (`vec![name]`) are opaque: their arguments are not rewritten.
///
/// An argument passed whole (`f(req)`) that the body never mentions is left
/// to the key to consume: it need not be `Clone`. A field, an element or a
/// dereference of an argument (`f(req.tenant)`, `f(names[0])`, `f(*id)`) is
/// cloned whatever the body does: the syntax cannot tell whether a
/// reference or a smart pointer stands between the argument and the place,
/// and moving out of those does not compile.
struct Owned<'a> {
    /// Every argument's name, `self` included.
    args: &'a [Ident],
    /// The arguments the body mentions.
    used: &'a [Ident],
}

impl Owned<'_> {
    /// The whole key, or an element of a tuple key: any place is cloned
    /// (it is part of the key, which must be `Clone` anyway).
    fn top(&self, e: &mut Expr) {
        if is_place(e) {
            *e = cloned(e);
        } else if let Expr::Tuple(t) = e {
            t.elems.iter_mut().for_each(|e| self.top(e));
        } else {
            self.inside(e);
        }
    }

    /// An expression in a value position.
    fn value(&self, e: &mut Expr) {
        if is_place(e) {
            let Some(root) = place_root(e) else { return };
            let whole = matches!(strip_parens(e), Expr::Path(_));
            if self.args.contains(root) && (!whole || self.used.contains(root)) {
                *e = cloned(e);
            }
        } else {
            self.inside(e);
        }
    }

    /// The value positions inside a non-place expression.
    fn inside(&self, e: &mut Expr) {
        match e {
            Expr::Call(c) => c.args.iter_mut().for_each(|a| self.value(a)),
            Expr::MethodCall(m) => {
                if !is_place(&m.receiver) {
                    self.inside(&mut m.receiver);
                }
                m.args.iter_mut().for_each(|a| self.value(a));
            }
            Expr::Struct(s) => {
                for field in &mut s.fields {
                    self.value(&mut field.expr);
                    if field.colon_token.is_none() {
                        // `K { name }`: now `K { name: <clone of name> }`.
                        field.colon_token = Some(syn::Token![:](field.member.span()));
                    }
                }
                if let Some(rest) = &mut s.rest {
                    self.value(rest);
                }
            }
            Expr::Array(a) => a.elems.iter_mut().for_each(|e| self.value(e)),
            Expr::Tuple(t) => t.elems.iter_mut().for_each(|e| self.value(e)),
            Expr::Binary(b) if moves_operands(&b.op) => {
                self.value(&mut b.left);
                self.value(&mut b.right);
            }
            // `parse(name)?`, `canon(name).await`, `name as u64`, `-x`.
            Expr::Try(t) => self.value(&mut t.expr),
            Expr::Await(a) => self.value(&mut a.base),
            Expr::Cast(c) => self.value(&mut c.expr),
            Expr::Unary(u) if !matches!(u.op, syn::UnOp::Deref(_)) => self.value(&mut u.expr),
            // `parse(name).id`, `load(name)[0]`: the base is computed.
            Expr::Field(f) => self.inside(&mut f.base),
            Expr::Index(i) => {
                self.inside(&mut i.expr);
                self.value(&mut i.index);
            }
            Expr::Range(r) => {
                for end in [&mut r.start, &mut r.end].into_iter().flatten() {
                    self.value(end);
                }
            }
            // Branches: the value each one ends in.
            Expr::If(i) => {
                self.tail(&mut i.then_branch);
                if let Some((_, other)) = &mut i.else_branch {
                    self.value(other);
                }
            }
            Expr::Match(m) => m.arms.iter_mut().for_each(|arm| self.value(&mut arm.body)),
            Expr::Block(b) => self.tail(&mut b.block),
            Expr::Paren(p) => self.inside(&mut p.expr),
            Expr::Group(g) => self.inside(&mut g.expr),
            _ => {}
        }
    }

    /// The value a block ends in, if it ends in one.
    fn tail(&self, block: &mut syn::Block) {
        if let Some(syn::Stmt::Expr(e, None)) = block.stmts.last_mut() {
            self.value(e);
        }
    }
}

/// Whether a binary operator takes its operands by value (arithmetic and
/// bit operators do; comparisons auto-ref, `&&` and `||` take `bool`s).
fn moves_operands(op: &syn::BinOp) -> bool {
    use syn::BinOp::*;
    matches!(
        op,
        Add(_)
            | Sub(_)
            | Mul(_)
            | Div(_)
            | Rem(_)
            | BitXor(_)
            | BitAnd(_)
            | BitOr(_)
            | Shl(_)
            | Shr(_)
    )
}

/// The names the function's arguments bind, and `self`.
fn arg_names(sig: &syn::Signature) -> Vec<Ident> {
    let mut names = Vec::new();
    for input in &sig.inputs {
        match input {
            syn::FnArg::Receiver(r) => names.push(Ident::new("self", r.self_token.span)),
            syn::FnArg::Typed(arg) => validate::bindings(&arg.pat, &mut names),
        }
    }
    names
}

/// Tokens, all at `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut t| {
            if let proc_macro2::TokenTree::Group(g) = &t {
                let mut g = Group::new(g.delimiter(), respan(g.stream(), span));
                g.set_span(span);
                t = g.into();
            }
            t.set_span(span);
            t
        })
        .collect()
}

/// The code of `fingerprint = <expr>`.
struct Fingerprint {
    /// `let __idem_fingerprint = ...;`: the expression's value, hashed
    /// once, before the key (which may consume an argument the
    /// fingerprint borrows), and checked to be `Hash` at the expression.
    eval: TokenStream,
    /// `let __idem_mismatch = ...;`: what a mismatched call returns,
    /// checked to be possible at the option (after the return kind).
    classify_mismatch: TokenStream,
    /// The fingerprint.
    var: Ident,
    /// The mismatch marker.
    mismatch_var: Ident,
}

impl Fingerprint {
    fn new(name: Span, value: &Expr, return_kind: &Ident) -> Self {
        let (first, last) = bounds(value);
        let var = local("__idem_fingerprint", first);
        let value_ref = local("__idem_fingerprint_ref", first);
        let kind = local("__idem_fingerprint_kind", first);
        let classify = spanned_call(
            quote_spanned!(first=> &&::idem::__private::fingerprint_probe::FingerprintProbe::of(#value_ref)),
            "__idem_fingerprint_kind",
            TokenStream::new(),
            (first, last),
        );
        let value = borrowed(value);
        let eval = quote! {
            let #var = {
                let #value_ref = &(#value);
                let #kind = #classify;
                ::idem::__private::fingerprint_probe::fingerprint(#kind, #value_ref)
            };
        };
        let mismatch_var = local("__idem_mismatch", name);
        let dispatch = spanned_call(
            quote_spanned!(name=> &&&::idem::__private::fingerprint_probe::MismatchProbe::of(#return_kind)),
            "__idem_mismatch",
            TokenStream::new(),
            (name, last),
        );
        Self {
            eval,
            classify_mismatch: quote!(let #mismatch_var = #dispatch;),
            var,
            mismatch_var,
        }
    }
}

/// A fingerprint expression that moves nothing out of the arguments: its
/// value is only hashed, and `&T` hashes as `T` does, so each place in a
/// tuple (`(order.amount, order.currency)`, nested tuples included) is
/// borrowed. The whole expression is borrowed by the expansion; anything
/// else is as written.
fn borrowed(e: &Expr) -> Expr {
    match e {
        Expr::Tuple(t) => {
            let mut t = t.clone();
            for elem in &mut t.elems {
                *elem = if is_place(elem) {
                    let (first, _) = bounds(elem);
                    Expr::Verbatim(quote_spanned!(first=> &(#elem)))
                } else {
                    borrowed(elem)
                };
            }
            Expr::Tuple(t)
        }
        Expr::Paren(p) => borrowed(&p.expr),
        e => e.clone(),
    }
}

/// `let var: fn() -> ty = || -> ty { value };`: a setting (`ttl`,
/// `max_entries`, `max_in_flight`) as a function that captures nothing, evaluated once, when
/// the table is created. A value that uses `self` or an argument would be
/// the first call's for every call: `validate` rejects one that names them,
/// and the coercion to a fn pointer anything else that captures (names
/// hidden in a macro), with rustc's error at the value: the closure spans
/// the value's tokens, the `fn` type the option's name.
fn setting(var: &Ident, name: Span, ty: TokenStream, value: &TokenStream) -> TokenStream {
    let (first, last) = bounds(value);
    let mut body = Group::new(Delimiter::Brace, value.clone());
    body.set_span(last);
    let closure = quote_spanned!(first=> || #body);
    let fn_ty = respan(quote!(fn() -> #ty), name);
    quote!(let #var: #fn_ty = #closure;)
}

/// What both kinds of tables share: the return kind, the function's name,
/// the key's variable, the fingerprint, and the body.
struct Steps {
    /// `__idem_return_kind`, the return type's `ReturnKind` marker.
    return_kind: Ident,
    /// The return type's tokens (the function's name if it has none): where
    /// errors about it point.
    ret_span: TokenStream,
    /// `__idem_fn`, the function's path, for messages.
    name_var: Ident,
    /// `__idem_key`.
    key_var: Ident,
    /// `fingerprint = ...`, if given.
    fingerprint: Option<Fingerprint>,
    /// `let __idem_return_kind = ...;`.
    classify_return: TokenStream,
    /// The unreachable `return` that types the body.
    dead_return: TokenStream,
    /// The body's statements.
    body: TokenStream,
    /// Where the work is located: `detached`, or the call site.
    work_span: Span,
}

impl Steps {
    /// The fingerprint's evaluation and its mismatch marker, if any.
    fn fingerprint(&self) -> (TokenStream, TokenStream) {
        self.fingerprint
            .as_ref()
            .map(|fp| (fp.eval.clone(), fp.classify_mismatch.clone()))
            .unwrap_or_default()
    }

    /// The body, as the work of a flight: a closure without arguments.
    /// `move`: it owns the arguments it uses (the key was evaluated from
    /// them first).
    fn work(&self) -> TokenStream {
        let Steps {
            dead_return, body, ..
        } = self;
        quote_spanned! {self.work_span=>
            move || async move {
                #dead_return
                #body
            }
        }
    }

    /// The body, as the work of a `flight = ...`: a closure whose argument
    /// is the executor's fence (a `Durable`'s `Fence`, a `SingleFlight`'s
    /// `NoFence`), bound to the name `fence = name` gives, if any.
    fn fenced_work(&self, fence: Option<(&Ident, &Ident)>) -> TokenStream {
        let Steps {
            dead_return, body, ..
        } = self;
        let arg = local("__idem_fence", Span::call_site());
        let bind = fence.map(|(name, kind)| {
            quote! {
                let #name = ::idem::__private::flight_probe::bind_fence(#kind, #arg);
            }
        });
        quote! {
            move |#arg| async move {
                #bind
                #dead_return
                #body
            }
        }
    }
}

/// The function's own table: the key classified (owned, hashable), the
/// table found in the function's `static` slot, and the driver's call.
fn in_own_table(
    args: &Args,
    key: &Expr,
    args_names: &[Ident],
    used_names: &[Ident],
    steps: &Steps,
) -> TokenStream {
    let Steps {
        return_kind,
        name_var,
        key_var,
        classify_return,
        work_span,
        ..
    } = steps;
    let work_span = *work_span;
    let work = steps.work();
    let (eval_fingerprint, classify_mismatch) = steps.fingerprint();
    let call_site = Span::call_site();
    let key_span = bounds(key).0;
    let kind = local("__idem_kind", key_span);
    let classify_key = |probe: TokenStream| {
        let (first, _) = bounds(key);
        spanned_call(
            quote_spanned!(first=> &&&::idem::__private::key_probe::KeyProbe::of(#probe)),
            "__idem_key_kind",
            TokenStream::new(),
            bounds(key),
        )
    };
    let eval_key = if is_place(key) {
        let r = local("__idem_ref", key_span);
        let classify = classify_key(r.to_token_stream());
        quote! {
            let (#kind, #key_var) = {
                let #r = &(#key);
                let #kind = #classify;
                (#kind, ::idem::__private::key_probe::clone_key(#kind, #r))
            };
        }
    } else {
        let key_value = owned(key, args_names, used_names);
        let classify = classify_key(quote!(&#key_var));
        // A tuple's elements are checked for borrows first, each at its
        // own span (see `idem::__private::key_probe`).
        let parts = match key {
            Expr::Tuple(t) => t
                .elems
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let (first, last) = bounds(e);
                    let index = syn::Index {
                        index: i as u32,
                        span: first,
                    };
                    let check = spanned_call(
                        quote_spanned!(first=> &&&::idem::__private::key_probe::KeyProbe::of(&#key_var.#index)),
                        "__idem_key_part",
                        TokenStream::new(),
                        (first, last),
                    );
                    quote!(let _ = #check;)
                })
                .collect(),
            _ => TokenStream::new(),
        };
        quote! {
            let #key_var = #key_value;
            #parts
            let #kind = #classify;
        }
    };
    let slot = format_ident!("__IDEM_SLOT", span = Span::mixed_site());
    let slot_var = local("__idem_slot", call_site);
    let mut config = quote!(::idem::__private::Config::new(#name_var()));
    let mut settings = TokenStream::new();
    if let Some(ttl) = &args.ttl {
        let var = local("__idem_ttl", call_site);
        settings.extend(setting(
            &var,
            ttl.name,
            quote!(::core::time::Duration),
            &ttl.value.0,
        ));
        config.extend(quote!(.ttl(#var())));
    }
    if let Some(max) = &args.max_entries {
        let var = local("__idem_max_entries", call_site);
        settings.extend(setting(
            &var,
            max.name,
            quote!(::core::primitive::usize),
            &max.value.0,
        ));
        config.extend(quote!(.max_entries(#var())));
    }
    if let Some(eviction) = &args.eviction {
        let mode = match eviction.value {
            Eviction::Never => quote_spanned!(eviction.name=> Never),
            Eviction::Adaptive => quote_spanned!(eviction.name=> Adaptive),
        };
        config.extend(quote!(.eviction(::idem::Eviction::#mode)));
    }
    if let Some(max) = &args.max_in_flight {
        let var = local("__idem_max_in_flight", call_site);
        settings.extend(setting(
            &var,
            max.name,
            quote!(::core::primitive::usize),
            &max.value.0,
        ));
        config.extend(quote!(.max_in_flight(#var())));
    }
    // A table that can refuse calls needs a return type that can carry
    // a refusal: checked by the type checker, which sees through
    // aliases, and reported at the option. One that cannot refuse
    // never uses its marker.
    let refusals = local("__idem_refusals", call_site);
    let classify_refusals = match args.refusing {
        Some((first, last)) => {
            let dispatch = spanned_call(
                quote_spanned!(first=> &&&::idem::__private::refusal_probe::RefusalProbe::of(#return_kind)),
                "__idem_refusals",
                TokenStream::new(),
                (first, last),
            );
            quote!(let #refusals = #dispatch;)
        }
        None => quote! {
            let #refusals = ::idem::__private::refusal_probe::PanicOnRefusal;
        },
    };
    // The type of this closure differs for each instantiation of the
    // function's (and its impl's) generic parameters: one table each.
    let instantiation = quote_spanned!(call_site=> || {});
    let table_var = local("__idem_table", call_site);
    // The slot's `static` is in a block of its own, so that its name is
    // not in scope in the body (`Span::mixed_site` does not hide items):
    // a parameter, a `let` or a `static` of the user's named
    // `__IDEM_SLOT` is theirs. One `static` per function still. The
    // table's key type is inferred from the key passed with it below.
    let find_table = quote! {
        #eval_fingerprint
        #eval_key
        #classify_return
        #classify_refusals
        #classify_mismatch
        let #slot_var: &'static ::idem::__private::Slot = {
            static #slot: ::idem::__private::Slot = ::idem::__private::Slot::new();
            &#slot
        };
        #settings
        let #key_var = ::idem::__private::key_probe::into_key(#kind, #key_var);
        let #table_var = ::idem::__private::own_table(
            #slot_var,
            #instantiation,
            #return_kind,
            || #config,
        );
    };
    let call = match &steps.fingerprint {
        None => driver_call(
            if args.detached.is_some() {
                quote!(run_detached)
            } else {
                quote!(run)
            },
            quote!(#table_var, #return_kind, #refusals, #name_var, #key_var, #work),
            work_span,
        ),
        Some(Fingerprint {
            var, mismatch_var, ..
        }) => driver_call(
            if args.detached.is_some() {
                quote!(run_detached_with_fingerprint)
            } else {
                quote!(run_with_fingerprint)
            },
            quote!(
                #table_var, #return_kind, #refusals, #mismatch_var, #name_var, #key_var, #var,
                #work
            ),
            work_span,
        ),
    };
    quote!(#find_table #call)
}

/// A `flight = ...` of the user's, a `SingleFlight` or a `Durable`: the
/// same tokens for both, the executor's traits picked by method
/// resolution (see `idem/src/private/{user_flight,durable_flight}.rs`) and
/// what depends on the executor decided by probes of its type
/// (`flight_probe.rs`). Returns the imports it needs and the steps, from
/// the fingerprint to the driver's `.await`.
fn in_flight(
    args: &Args,
    flight: &Expr,
    key: &Expr,
    key_value: TokenStream,
    steps: &Steps,
) -> (TokenStream, TokenStream) {
    let Steps {
        return_kind,
        ret_span,
        name_var,
        key_var,
        classify_return,
        work_span,
        ..
    } = steps;
    let (eval_fingerprint, classify_mismatch) = steps.fingerprint();
    let (first, last) = bounds(flight);
    let table_var = local("__idem_table", first);
    // `fit(flight.__idem_flight(), return_kind)`: method-call auto-deref
    // sees through `Arc` and other smart pointers, and `fit` checks the
    // executor against the return type. When it does not fit, rustc
    // blames the argument whose type is the executor's: the method call,
    // which spans the user's expression as written (parenthesised, at its
    // first token, only if a method call would bind tighter than it). The
    // call, too, spans the flight expression: rustc also reports the bound
    // of `fit`'s return type at the call; at one span, the two are one
    // error. The flight is evaluated before the key.
    let found = if is_postfix(flight) {
        let method = Ident::new("__idem_flight", last);
        let mut args = Group::new(Delimiter::Parenthesis, TokenStream::new());
        args.set_span(last);
        quote_spanned!(last=> #flight.#method #args)
    } else {
        spanned_call(
            quote_spanned!(first=> #flight),
            "__idem_flight",
            TokenStream::new(),
            (first, last),
        )
    };
    let mut fit_args = Group::new(Delimiter::Parenthesis, quote!(#found, #return_kind));
    fit_args.set_span(last);
    let found = quote_spanned!(first=> ::idem::__private::fit #fit_args);
    // A `SingleFlight`'s bounds are not known here: a refusal is an `Err`
    // if the error type can carry one, and a panic otherwise. (A `Durable`
    // refuses nothing.)
    let refusals = local("__idem_refusals", first);
    let classify_refusals = quote! {
        let #refusals = (&&::idem::__private::refusal_probe::RefusalProbe::of(#return_kind))
            .__idem_flight_refusals();
    };
    // A `Durable`'s own failures need a return type that can carry them,
    // checked at the return type.
    let failures = local("__idem_failures", first);
    let classify_failures = {
        let (ret_first, ret_last) = bounds(ret_span);
        let dispatch = spanned_call(
            quote_spanned!(ret_first=> &&&::idem::__private::flight_probe::DurableFailureProbe::of(#table_var, #return_kind)),
            "__idem_durable_failures",
            TokenStream::new(),
            (ret_first, ret_last),
        );
        quote!(let #failures = #dispatch;)
    };
    // The key, typed by the executor (as a `SingleFlight`'s key type, so
    // that `key = id.into()` infers and a mismatch is one error, at the
    // key), then made the executor's key (a `Durable` takes text).
    let (key_first, key_last) = bounds(key);
    let text_kind = spanned_call(
        quote_spanned!(key_first=> &&&&&::idem::__private::flight_probe::TextKeyProbe::of(#table_var, &#key_var)),
        "__idem_text_key",
        TokenStream::new(),
        (key_first, key_last),
    );
    // In a block of its own: a local whose address is taken (by the probe)
    // would otherwise keep its slot in the future across the `.await`.
    let eval_key = quote! {
        let #key_var = {
            let #key_var = (#table_var).__idem_key(#key_value);
            ::idem::__private::flight_probe::text_key(#text_kind, #key_var)
        };
    };
    // `fence = name`: only a `Durable` has one, checked at the option.
    let fence = args.fence.as_ref().map(|opt| {
        let kind = local("__idem_fence_kind", opt.name);
        let dispatch = spanned_call(
            quote_spanned!(opt.name=> &&::idem::__private::flight_probe::FenceProbe::of(#table_var)),
            "__idem_fence",
            TokenStream::new(),
            (opt.name, opt.value.last),
        );
        (quote!(let #kind = #dispatch;), &opt.value.name, kind)
    });
    let classify_fence = fence.as_ref().map(|(classify, ..)| classify);
    // A `Durable` records its values and errors with `serde`: checked at
    // the flight, which then stands in for one that does, if need be.
    let records = spanned_call(
        quote_spanned!(first=> &&&&::idem::__private::flight_probe::RecordProbe::of(#table_var)),
        "__idem_records",
        TokenStream::new(),
        (first, last),
    );
    let find_table = quote! {
        #eval_fingerprint
        #classify_return
        #classify_refusals
        #classify_mismatch
        let #table_var = #found;
        let #table_var = ::idem::__private::flight_probe::records(#records, #table_var);
        #classify_failures
        #classify_fence
        #eval_key
    };

    let call = if let Some(detached) = args.detached {
        // `detached`: only a `SingleFlight` can, checked at the option;
        // then its own table's drivers, whose bounds on the work are
        // reported at the option too.
        let dispatch = spanned_call(
            quote_spanned!(detached.span=> &&::idem::__private::flight_probe::DetachProbe::of(#table_var)),
            "__idem_detached",
            TokenStream::new(),
            (detached.span, detached.span),
        );
        let detach = quote! {
            let #table_var =
                ::idem::__private::flight_probe::detach(#dispatch, #table_var, #return_kind);
        };
        let work = steps.work();
        let call = match &steps.fingerprint {
            None => driver_call(
                quote!(run_detached),
                quote!(#table_var, #return_kind, #refusals, #name_var, #key_var, #work),
                *work_span,
            ),
            Some(Fingerprint {
                var, mismatch_var, ..
            }) => driver_call(
                quote!(run_detached_with_fingerprint),
                quote!(
                    #table_var, #return_kind, #refusals, #mismatch_var, #name_var, #key_var,
                    #var, #work
                ),
                *work_span,
            ),
        };
        quote!(#detach #call)
    } else {
        // The call spans the flight expression: an executor that cannot run
        // (a `Durable` whose values are not `serde` types) is reported
        // there.
        let work = steps.fenced_work(fence.as_ref().map(|(_, name, kind)| (*name, kind)));
        let call = match &steps.fingerprint {
            None => spanned_call(
                table_var.to_token_stream(),
                "__idem_run",
                quote!(#return_kind, #refusals, #failures, #name_var, #key_var, #work),
                (first, last),
            ),
            Some(Fingerprint {
                var, mismatch_var, ..
            }) => spanned_call(
                table_var.to_token_stream(),
                "__idem_run_with_fingerprint",
                quote!(
                    #return_kind, #refusals, #mismatch_var, #failures, #name_var, #key_var,
                    #var, #work
                ),
                (first, last),
            ),
        };
        quote!(#call.await)
    };

    let imports = quote! {
        #[allow(unused_imports)]
        use ::idem::__private::{
            flight_probe::{
                DetachOther as _, DetachTable as _, DurableFailuresCarried as _,
                DurableFailuresNotCarried as _, FenceOfDurable as _, FenceWithoutDurable as _,
                NotDurable as _, RecordsBoth as _, RecordsNoErrors as _, RecordsNoValues as _,
                RecordsNothing as _, TableKeyKept as _, TextKeyBorrowed as _,
                TextKeyDisplayed as _, TextKeyInvalid as _, TextKeyOwned as _,
            },
            AsFlight as _, DurableFlight as _, DurableRun as _, TableRun as _,
        };
    };
    (imports, quote!(#find_table #call))
}

fn expand(args: &Args, func: ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let ret = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => ty.to_token_stream(),
    };
    let ret_span: TokenStream = match &sig.output {
        ReturnType::Default => sig.ident.to_token_stream(),
        ReturnType::Type(_, ty) => ty.to_token_stream(),
    };
    let key = args.key();
    // The arguments the body mentions: those the key must leave to it. An
    // argument the body never names may be consumed by the key (it need not
    // be `Clone`, and is not copied).
    let body_stream = block.to_token_stream();
    let args_names = arg_names(&sig);
    let used_names: Vec<Ident> = args_names
        .iter()
        .filter(|name| crate::validate::find_ident(&body_stream, &name.to_string()).is_some())
        .cloned()
        .collect();
    let key_span = bounds(key).0;
    let call_site = Span::call_site();
    // The function's path, for messages (a method's lacks its type), as a
    // closure that captures nothing: it takes no room in the future.
    let name_var = local("__idem_fn", call_site);
    let name = sig.ident.to_string();
    let name_let = quote! {
        let #name_var = || -> &'static ::core::primitive::str {
            ::core::concat!(::core::module_path!(), "::", #name)
        };
    };

    let return_kind = local("__idem_return_kind", bounds(&ret_span).0);
    let key_var = local("__idem_key", key_span);
    // The body, as the work of a flight (see `Steps::work`). The unreachable `return`
    // gives the async block the function's return type before the body is
    // checked, so `?` converts errors into it and a mismatch is reported at
    // the user's expression (the trick `async-trait` uses).
    //
    // The body's statements are spliced into the async block rather than
    // nested as a block: a nested one-expression body (`{ id * 2 }`) would
    // trip rustc's `unused_braces` lint in the user's crate. An empty body
    // stays a block, so that a missing value is reported at its braces.
    let ret_var = local("__idem_ret", call_site);
    let body_tokens = if block.stmts.is_empty() {
        block.to_token_stream()
    } else {
        let stmts = &block.stmts;
        quote!(#(#stmts)*)
    };
    let dead_return = quote_spanned! {call_site=>
        #[allow(unreachable_code, clippy::diverging_sub_expression)]
        if let ::core::option::Option::Some(#ret_var) = ::core::option::Option::None::<#ret> {
            return #ret_var;
        }
    };
    // With `detached`, the closure and its async block are located at the
    // `detached` keyword: when the body is not `Send`, rustc's "future
    // cannot be sent between threads safely" then points at the option
    // that needs it, not at the whole attribute.
    let work_span = args.detached.map_or(call_site, |d| d.span);

    // The traits of the auto-ref specialisations (see `idem::__private`),
    // imported as `_`: they bring no name into scope.
    let imports = quote! {
        #[allow(unused_imports)]
        use ::idem::__private::{
            key_probe::{
                AnyPart as _, Bad as _, Borrowed as _, BorrowedMut as _, BorrowedMutPart as _,
                BorrowedPart as _, Owned as _,
            },
            return_probe::{
                ResultBadError as _, ResultBadValue as _, ResultOk as _, ValueBad as _,
                ValueOk as _,
            },
            refusal_probe::{
                ErrorCannotCarry as _, FlightCarries as _, FlightPanics as _, MustCarry as _,
                ValueCannotCarry as _,
            },
        };
    };
    let classify_return = {
        let (first, _) = bounds(&ret_span);
        let dispatch = spanned_call(
            quote_spanned!(first=> &&&&&::idem::__private::return_probe::ReturnProbe::<#ret>::new()),
            "__idem_return_kind",
            TokenStream::new(),
            bounds(&ret_span),
        );
        quote!(let #return_kind = #dispatch;)
    };
    let fingerprint = args
        .fingerprint
        .as_ref()
        .map(|opt| Fingerprint::new(opt.name, &opt.value, &return_kind));
    let imports = match &fingerprint {
        None => imports,
        Some(_) => quote! {
            #imports
            #[allow(unused_imports)]
            use ::idem::__private::fingerprint_probe::{
                FingerprintHashable as _, FingerprintNotHashable as _, MismatchCarried as _,
                MismatchErrorCannotCarry as _, MismatchValueCannotCarry as _,
            };
        },
    };
    let steps = Steps {
        return_kind,
        ret_span,
        name_var,
        key_var,
        fingerprint,
        classify_return,
        dead_return,
        body: body_tokens,
        work_span,
    };
    // Either way, the table is found first, and the key made its key.
    let (imports, body) = match &args.flight {
        None => {
            let body = in_own_table(args, key, &args_names, &used_names, &steps);
            (imports, body)
        }
        Some(flight) => {
            let key_value = owned(key, &args_names, &used_names);
            let (flight_imports, body) = in_flight(args, &flight.value, key, key_value, &steps);
            (quote!(#imports #flight_imports), body)
        }
    };
    let body = quote!(#name_let #body);

    // syn puts a body's inner attributes (`#![allow(..)]`) with the outer
    // ones: they go back at the top of the body.
    let (inner, outer): (Vec<_>, Vec<_>) = attrs
        .into_iter()
        .partition(|a| matches!(a.style, syn::AttrStyle::Inner(_)));
    quote! {
        #(#outer)*
        #vis #sig {
            #(#inner)*
            #imports
            #body
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(args: &str, item: &str) -> String {
        idempotent(args.parse().unwrap(), item.parse().unwrap()).to_string()
    }

    #[test]
    fn expands_to_the_driver_with_the_body_as_work() {
        let out = expand_str(
            "key = order.id, ttl = \"30s\"",
            "pub async fn place(order: Order) -> Result<Receipt, PayError> { charge(order).await }",
        );
        for part in [
            "pub async fn place (order : Order) -> Result < Receipt , PayError >",
            "{ static __IDEM_SLOT : :: idem :: __private :: Slot",
            ":: idem :: __private :: key_probe :: clone_key",
            ":: idem :: __private :: own_table (",
            ":: idem :: __private :: run (",
            ":: core :: time :: Duration :: new (30u64 , 0u32)",
            "move || async move",
            "charge (order) . await",
        ] {
            assert!(out.contains(part), "missing `{part}` in {out}");
        }
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn flight_and_detached_pick_the_table_and_the_driver() {
        let out = expand_str(
            "key = id, flight = self.flight, detached",
            "async fn get(&self, id: u64) -> u64 { id }",
        );
        assert!(out.contains(":: idem :: __private :: fit ("), "{out}");
        assert!(
            out.contains(":: idem :: __private :: run_detached ("),
            "{out}"
        );
        assert!(out.contains("__idem_flight"), "{out}");
        assert!(!out.contains("__IDEM_SLOT"), "{out}");
        assert!(!out.contains("own_table"), "{out}");
    }

    #[test]
    fn a_table_that_can_refuse_checks_that_the_return_type_carries_refusals() {
        let f = "async fn f(id: u64) -> Result<u64, E> { Ok(id) }";
        let out = expand_str(
            "key = id, ttl = \"1h\", max_entries = 2, eviction = \"never\", max_in_flight = 4",
            f,
        );
        for part in [
            ". eviction (:: idem :: Eviction :: Never)",
            ". max_in_flight (",
            ". __idem_refusals ()",
        ] {
            assert!(out.contains(part), "missing `{part}` in {out}");
        }
        // A table that cannot refuse: no check, and a marker never used.
        for args in [
            "key = id, ttl = \"1h\"",
            "key = id, ttl = \"1h\", max_entries = 2, eviction = \"adaptive\"",
        ] {
            let out = expand_str(args, f);
            assert!(!out.contains("__idem_refusals ()"), "{out}");
            assert!(out.contains("PanicOnRefusal"), "{out}");
        }
        // A flight's bounds are unknown: an `Err` if the type can carry it.
        let out = expand_str(
            "key = id, flight = self.flight",
            "async fn f(&self, id: u64) -> Result<u64, E> { Ok(id) }",
        );
        assert!(out.contains(". __idem_flight_refusals ()"), "{out}");
    }

    #[test]
    fn a_fingerprint_is_hashed_first_and_its_mismatch_checked_at_the_option() {
        let f = "async fn pay(order: Order) -> Result<u64, E> { Ok(order.cents) }";
        let out = expand_str(
            "key = order.id, fingerprint = (order.cents, order.currency), detached",
            f,
        );
        for part in [
            "FingerprintProbe :: of (__idem_fingerprint_ref)) . __idem_fingerprint_kind ()",
            "MismatchProbe :: of (__idem_return_kind)) . __idem_mismatch ()",
            ":: idem :: __private :: run_detached_with_fingerprint (",
            // The tuple's places are borrowed: hashed, never moved.
            "& ((& (order . cents) , & (order . currency)))",
        ] {
            assert!(out.contains(part), "missing `{part}` in {out}");
        }
        let first = |part: &str| out.find(part).unwrap_or_else(|| panic!("{part}: {out}"));
        assert!(first("let __idem_fingerprint =") < first("let (__idem_kind"));
        let out = expand_str("key = id, fingerprint = id, flight = self.flight", f);
        assert!(
            out.contains(". __idem_run_with_fingerprint (__idem_return_kind"),
            "{out}"
        );
        // Without the option, nothing of it: the expansion is as before.
        let out = expand_str("key = order.id, ttl = \"1h\"", f);
        assert!(!out.to_lowercase().contains("fingerprint"), "{out}");
        assert!(!out.contains("mismatch"), "{out}");
    }

    #[test]
    fn a_flight_is_checked_and_run_by_methods_of_its_executor() {
        let f = "async fn pay(&self, id: u64) -> Result<String, E> { Ok(id.to_string()) }";
        let out = expand_str("key = id, flight = self.payments", f);
        let first = |part: &str| out.find(part).unwrap_or_else(|| panic!("{part}: {out}"));
        // In this order: found and fitted, what it records, its failures,
        // the key typed and made text, the run.
        let steps = [
            ":: idem :: __private :: fit (self . payments . __idem_flight () , __idem_return_kind)",
            "RecordProbe :: of (__idem_table)) . __idem_records ()",
            "DurableFailureProbe :: of (__idem_table , __idem_return_kind)) . __idem_durable_failures ()",
            "(__idem_table) . __idem_key (",
            "TextKeyProbe :: of (__idem_table , & __idem_key)) . __idem_text_key ()",
            "(__idem_table) . __idem_run (__idem_return_kind , __idem_refusals , __idem_failures",
        ];
        for pair in steps.windows(2) {
            assert!(first(pair[0]) < first(pair[1]), "{pair:?} in {out}");
        }
        // The work takes the executor's fence, unnamed without `fence`.
        assert!(out.contains("move | __idem_fence | async move"), "{out}");
        assert!(!out.contains("bind_fence"), "{out}");
        assert!(!out.contains("__idem_fence ()"), "{out}");

        let out = expand_str("key = id, flight = self.payments, fence = lease", f);
        for part in [
            "FenceProbe :: of (__idem_table)) . __idem_fence ()",
            "let lease = :: idem :: __private :: flight_probe :: bind_fence (__idem_fence_kind , __idem_fence) ;",
        ] {
            assert!(out.contains(part), "missing `{part}` in {out}");
        }

        // `detached`: checked to be a `SingleFlight`, then its own driver.
        let out = expand_str("key = id, flight = self.payments, detached", f);
        for part in [
            "DetachProbe :: of (__idem_table)) . __idem_detached ()",
            ":: idem :: __private :: run_detached (",
            "move || async move",
        ] {
            assert!(out.contains(part), "missing `{part}` in {out}");
        }
        assert!(!out.contains("__idem_run ("), "{out}");

        // An expression a method call would bind tighter than is
        // parenthesised.
        let out = expand_str("key = id, flight = &*FLIGHT", f);
        assert!(out.contains("(& * FLIGHT) . __idem_flight ()"), "{out}");
    }

    #[test]
    fn fence_needs_a_flight_and_no_detached() {
        let f = "async fn pay(&self, id: u64) -> Result<String, E> { Ok(id.to_string()) }";
        for (args, error) in [
            ("key = id, fence = fence", "there is no `flight`"),
            (
                "key = id, flight = self.p, fence = fence, detached",
                "cannot be combined with `detached`",
            ),
            ("key = id, flight = self.p, fence = a.b", "expected a name"),
            (
                "key = id, flight = self.p, fence = id",
                "would hide the argument `id`",
            ),
        ] {
            let out = expand_str(args, f);
            assert!(out.contains("compile_error"), "{args}: {out}");
            assert!(out.contains(error), "{args}: `{error}` in {out}");
        }
    }

    #[test]
    fn on_error_the_function_is_emitted_unchanged() {
        let item = "async fn get(id: u64) -> u64 { id }";
        let out = expand_str("ttl = \"30s\"", item);
        assert!(out.contains("compile_error"), "{out}");
        let unchanged: TokenStream = item.parse().unwrap();
        assert!(out.ends_with(&unchanged.to_string()), "{out}");
    }

    #[test]
    fn places_are_cloned_and_values_are_not() {
        let parse = |s: &str| syn::parse_str::<Expr>(s).unwrap();
        for place in ["a", "a.b", "a.b.c", "self.id", "a[0]", "*a", "(a.b)"] {
            assert!(is_place(&parse(place)), "{place}");
        }
        for value in ["a.b()", "f(a)", "format!(\"{a}\")", "(a, b)", "1", "&a"] {
            assert!(!is_place(&parse(value)), "{value}");
        }
        let tuple = owned(&parse("(a.b, f(c))"), &[], &[]).to_string();
        assert!(tuple.contains("key_of (& (a . b))"), "{tuple}");
        assert!(tuple.contains("f (c)"), "{tuple}");
    }

    #[test]
    fn arguments_in_value_positions_are_cloned() {
        let args = [
            format_ident!("a"),
            format_ident!("b"),
            format_ident!("self"),
        ];
        let owned = |s: &str| owned(&syn::parse_str::<Expr>(s).unwrap(), &args, &args).to_string();
        let clone = |place: &str| format!("key_of (& ({place}))");
        for (key, cloned) in [
            ("Some(a)", vec!["a"]),
            ("K { a }", vec!["a"]),
            ("K { x: a.x, ..b }", vec!["a . x", "b"]),
            ("[a, b]", vec!["a", "b"]),
            ("f(g(a), (b, 1))", vec!["a", "b"]),
            ("x.m(a)", vec!["a"]),
            ("a + b", vec!["a", "b"]),
            ("Some(self.id)", vec!["self . id"]),
            ("(C, Some(a))", vec!["C", "a"]),
            ("parse(a)?", vec!["a"]),
            ("canon(a).await", vec!["a"]),
            ("parse(a).id", vec!["a"]),
            ("load(a)[b]", vec!["a", "b"]),
            ("f(a) as u64", vec!["a"]),
            ("if c { f(a) } else { b }", vec!["a", "b"]),
            ("match x { 0 => a, _ => b }", vec!["a", "b"]),
        ] {
            let out = owned(key);
            for place in cloned {
                assert!(out.contains(&clone(place)), "{key}: `{place}` in {out}");
            }
        }
        // Receivers, borrows, other names, comparisons and macros: as is.
        for key in [
            "a.to_string()",
            "f(&a)",
            "Some(C)",
            "f(x)",
            "Some(a == b)",
            "vec![a]",
            "K { a: 1 }",
        ] {
            let out = owned(key);
            assert!(!out.contains("key_of"), "{key}: {out}");
        }
        assert!(owned("K { a }").contains("a : {"), "shorthand expanded");
    }

    #[test]
    fn an_argument_the_body_does_not_use_is_consumed_whole_but_its_parts_are_cloned() {
        let args = [format_ident!("req"), format_ident!("self")];
        let owned = |s: &str| owned(&syn::parse_str::<Expr>(s).unwrap(), &args, &[]).to_string();
        assert!(!owned("f(req)").contains("key_of"), "moved whole");
        assert!(!owned("f((req))").contains("key_of"), "moved whole");
        for key in ["f(req.tenant)", "f(req[0])", "f(*req)", "f(self.tenant)"] {
            assert!(owned(key).contains("key_of"), "{key}: behind a reference?");
        }
    }
}
