//! The machinery shared by the probes ([`key_probe`](super::key_probe),
//! [`return_probe`](super::return_probe),
//! [`refusal_probe`](super::refusal_probe)): one level of an auto-ref
//! specialisation.
//!
//! A probe is a value the expansion calls one method on through several
//! `&`s, `(&&&probe).__idem_key_kind()`. Method lookup tries the receiver
//! as written first, then with one `&` fewer at each step, so the trait
//! implemented for the most-referenced receiver that matches wins: each
//! level is a trait implemented for the probe behind one more `&` than the
//! next, and a level's impl applies only to the types it accepts. The
//! levels are in scope only inside the expansion (imported as `_`).

/// Implemented by every type: the check of the levels that accept their
/// type.
pub trait Fine {}
impl<T: ?Sized> Fine for T {}

/// Declares one level of an auto-ref specialisation: a trait with one
/// method, `$method`, implemented for `$receiver`, that returns `$marker`
/// and requires `$culprit: $check` (so that a bad type is reported once,
/// here, by `$check`'s `#[diagnostic::on_unimplemented]` message).
macro_rules! level {
    (
        $(#[$doc:meta])* $trait:ident :: $method:ident for $receiver:ty => $marker:ty,
        [$($generics:tt)*] $(where {$($bound:tt)*})?, check $culprit:ty: $check:ident
    ) => {
        $(#[$doc])*
        pub trait $trait {
            /// What this level returns.
            type Marker;
            /// The type whose check this level needs.
            type Culprit: ?Sized;
            /// The marker of this level.
            fn $method(&self) -> Self::Marker
            where
                Self::Culprit: $check;
        }
        impl<$($generics)*> $trait for $receiver $(where $($bound)*)? {
            type Marker = $marker;
            type Culprit = $culprit;
            #[inline]
            fn $method(&self) -> $marker
            where
                Self::Culprit: $check,
            {
                <$marker>::NEW
            }
        }
    };
}
