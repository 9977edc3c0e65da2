//! The table of a function without `flight = ...`: a [`Slot`] in a hidden
//! `static` inside the function, holding one table per instantiation,
//! built on first use from the attribute's settings ([`Config`]), and
//! found by [`own_table`].

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::OnceLock;
use std::time::Duration;

use parking_lot::RwLock;

use super::return_probe::ReturnKind;
use crate::{Eviction, SingleFlight};

/// The table of an `#[idempotent]` function without `flight = ...`: the
/// table of instantiation `M` in the function's `slot`, with the key type
/// `K` of its key (inferred from the call it is passed to) and the value
/// and error types of its return kind, built with `config` on first use.
///
/// `M` is the type of a closure written in the function (see [`Slot`]).
#[inline]
pub fn own_table<M, Ret, K, Cfg>(
    slot: &'static Slot,
    _instantiation: M,
    _return_kind: Ret,
    config: Cfg,
) -> &'static SingleFlight<K, Ret::Value, Ret::Error>
where
    M: 'static,
    Ret: ReturnKind,
    K: Hash + Eq + Send + Sync + 'static,
    Cfg: FnOnce() -> Config,
{
    slot.table::<M, K, Ret::Value, Ret::Error>(config)
}

/// The settings of a function's own table, from the attribute.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    name: &'static str,
    ttl: Option<Duration>,
    max_entries: Option<usize>,
    eviction: Eviction,
    max_in_flight: Option<usize>,
}

impl Config {
    /// Settings for the function `name` (its path, for messages): a table
    /// that only coalesces.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            ttl: None,
            max_entries: None,
            eviction: Eviction::Adaptive,
            max_in_flight: None,
        }
    }

    /// `ttl = ...`.
    pub const fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// `max_entries = ...`.
    pub const fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = Some(max_entries);
        self
    }

    /// `eviction = "never"` (or `"adaptive"`, the default).
    pub const fn eviction(mut self, eviction: Eviction) -> Self {
        self.eviction = eviction;
        self
    }

    /// `max_in_flight = ...`.
    pub const fn max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = Some(max_in_flight);
        self
    }

    fn build<K, V, E>(self) -> SingleFlight<K, V, E>
    where
        K: Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        // Named after the function, for the `tracing` feature's spans.
        let mut builder = SingleFlight::builder()
            .name(self.name)
            .eviction(self.eviction);
        if let Some(ttl) = self.ttl {
            builder = builder.ttl(ttl);
        }
        if let Some(n) = self.max_entries {
            builder = builder.max_entries(n);
        }
        if let Some(n) = self.max_in_flight {
            builder = builder.max_in_flight(n);
        }
        // Literal settings are checked at compile time; this is reached only
        // by a `max_entries` or `max_in_flight` expression that evaluates
        // to 0.
        builder.build().unwrap_or_else(|e| {
            panic!(
                "idem: #[idempotent] on `{}`: invalid settings: {e}",
                self.name
            )
        })
    }
}

/// The table of one `#[idempotent]` function, created on its first call.
///
/// The macro puts one `Slot` in a `static` inside each function, so equal
/// keys passed to different functions never meet. The table's type is
/// inferred at the call (the user never writes it) and erased here as
/// `dyn Any`; reading it back is one downcast, a `TypeId` comparison.
///
/// A `static` inside a generic function is shared by all of its
/// instantiations (and one inside a method by all instantiations of a
/// generic `impl`), so a slot holds one table per *instantiation*: each
/// table is tagged with the type of a closure written in the function body,
/// which differs for each instantiation of the function's and its `impl`'s
/// generic parameters. The first instantiation to call is found without a
/// lock; the others are found in a map behind a read lock.
pub struct Slot {
    first: OnceLock<Box<dyn Any + Send + Sync>>,
    more: RwLock<BTreeMap<TypeId, &'static (dyn Any + Send + Sync)>>,
}

/// A table and the instantiation it belongs to.
struct Tagged<M, T> {
    table: T,
    _instantiation: PhantomData<fn() -> M>,
}

impl<M, T> Tagged<M, T> {
    fn new(table: T) -> Self {
        Self {
            table,
            _instantiation: PhantomData,
        }
    }
}

impl Slot {
    /// An empty slot, for a `static`.
    #[allow(clippy::new_without_default)] // only ever used in a `static`
    pub const fn new() -> Self {
        Self {
            first: OnceLock::new(),
            more: RwLock::new(BTreeMap::new()),
        }
    }

    /// The table of instantiation `M`, built with `config` on first use.
    #[inline]
    pub fn table<M, K, V, E>(
        &'static self,
        config: impl FnOnce() -> Config,
    ) -> &'static SingleFlight<K, V, E>
    where
        M: 'static,
        K: Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        if let Some(first) = self.first.get() {
            if let Some(t) = (**first).downcast_ref::<Tagged<M, SingleFlight<K, V, E>>>() {
                return &t.table;
            }
        }
        self.table_slow::<M, K, V, E>(config)
    }

    #[cold]
    #[inline(never)]
    fn table_slow<M, K, V, E>(
        &'static self,
        config: impl FnOnce() -> Config,
    ) -> &'static SingleFlight<K, V, E>
    where
        M: 'static,
        K: Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        type T<M, K, V, E> = Tagged<M, SingleFlight<K, V, E>>;
        let mut config = Some(config);
        let first = self.first.get_or_init(|| {
            let config = config.take().expect("the config is taken once");
            Box::new(T::<M, K, V, E>::new(config().build()))
        });
        if let Some(t) = (**first).downcast_ref::<T<M, K, V, E>>() {
            return &t.table;
        }
        // Another instantiation of a generic function came first.
        let id = TypeId::of::<T<M, K, V, E>>();
        let found = self.more.read().get(&id).copied();
        let any = match found {
            Some(any) => any,
            None => *self.more.write().entry(id).or_insert_with(|| {
                let config = config.take().expect("the config is taken once");
                // One table per instantiation, for the life of the program,
                // like the `static` it belongs to.
                Box::leak(Box::new(T::<M, K, V, E>::new(config().build())))
            }),
        };
        let t = any
            .downcast_ref::<T<M, K, V, E>>()
            .expect("a slot's tables are keyed by their own TypeId");
        &t.table
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("initialized", &self.first.get().is_some())
            .field("more_instantiations", &self.more.read().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    #[test]
    fn a_slot_keeps_one_table_per_instantiation() {
        static SLOT: Slot = Slot::new();
        let config = || Config::new("test");
        let a = SLOT.table::<fn(), u32, u32, Infallible>(config);
        let b = SLOT.table::<fn(), u32, u32, Infallible>(config);
        assert!(std::ptr::eq(a, b), "the fast path finds the first table");
        let c = SLOT.table::<u8, u32, u32, Infallible>(config);
        let d = SLOT.table::<u8, u32, u32, Infallible>(config);
        assert!(std::ptr::eq(c, d), "the map finds the others");
        assert!(!std::ptr::eq(a, c), "instantiations never share a table");
        assert!(format!("{SLOT:?}").contains("more_instantiations: 1"));
    }

    #[test]
    fn concurrent_first_calls_build_one_table_per_instantiation() {
        static SLOT: Slot = Slot::new();
        let tables: Vec<(usize, usize)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    s.spawn(move || {
                        let t = if i % 2 == 0 {
                            SLOT.table::<u8, u8, u8, Infallible>(|| Config::new("t"))
                        } else {
                            SLOT.table::<u16, u8, u8, Infallible>(|| Config::new("t"))
                        };
                        (i % 2, t as *const _ as usize)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for parity in 0..2 {
            let mut ptrs: Vec<usize> = tables
                .iter()
                .filter(|(p, _)| *p == parity)
                .map(|(_, t)| *t)
                .collect();
            ptrs.dedup();
            assert_eq!(ptrs.len(), 1, "one table for instantiation {parity}");
        }
        assert_ne!(tables[0].1, tables[1].1);
    }

    #[test]
    fn configured_tables_store_results() {
        static SLOT: Slot = Slot::new();
        let t = SLOT.table::<(), u8, u8, Infallible>(|| {
            Config::new("t")
                .ttl(Duration::from_secs(60))
                .max_entries(10)
        });
        assert!(format!("{t:?}").contains("max_entries: Some(10)"));
        let t = SLOT.table::<u8, u8, u8, Infallible>(|| {
            Config::new("t")
                .ttl(Duration::from_secs(60))
                .max_entries(10)
                .eviction(Eviction::Never)
                .max_in_flight(3)
        });
        let debug = format!("{t:?}");
        assert!(debug.contains("eviction: Never"), "{debug}");
        assert!(debug.contains("max_in_flight: Some(3)"), "{debug}");
    }

    #[test]
    #[should_panic(expected = "#[idempotent] on `zero`: invalid settings")]
    fn invalid_settings_from_expressions_panic_with_the_functions_name() {
        static SLOT: Slot = Slot::new();
        let zero = std::hint::black_box(0);
        SLOT.table::<(), u8, u8, Infallible>(|| {
            Config::new("zero")
                .ttl(Duration::from_secs(1))
                .max_entries(zero)
        });
    }
}
