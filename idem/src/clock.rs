//! The table's notion of time.
//!
//! A cache hit has to know whether its entry is still fresh, so it reads the
//! clock once. A precise monotonic read (`Instant::now`) costs about as much
//! as the whole rest of a hit (24 ns against 22 ns for a sharded map lookup on
//! the machine in `BENCHMARKS.md`), so by default idem reads the kernel's
//! *coarse* monotonic clock (`CLOCK_MONOTONIC_COARSE`, 5 ns, updated every
//! scheduler tick: 1–4 ms). TTLs are therefore honoured to within one tick.
//! Platforms without a coarse clock use `std::time::Instant`.
//!
//! With the `test-util` feature, time comes from `tokio::time::Instant`
//! instead, so a paused tokio clock (`tokio::time::pause`,
//! `#[tokio::test(start_paused = true)]`, `tokio::time::advance`) controls
//! expiry exactly.

use std::time::Duration;

/// A point in time, as the table sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timestamp(Repr);

#[cfg(feature = "test-util")]
type Repr = tokio::time::Instant;

#[cfg(not(feature = "test-util"))]
type Repr = u64;

impl Timestamp {
    /// Reads the clock.
    #[inline]
    pub(crate) fn now() -> Self {
        Self(imp::now())
    }

    /// `self + d`, saturating to "never".
    #[inline]
    pub(crate) fn saturating_add(self, d: Duration) -> Self {
        Self(imp::add(self.0, d))
    }

    /// How long from `earlier` to `self`; zero if `earlier` is later.
    pub(crate) fn saturating_since(self, earlier: Self) -> Duration {
        imp::since(self.0, earlier.0)
    }
}

#[cfg(feature = "test-util")]
mod imp {
    use std::time::Duration;
    use tokio::time::Instant;

    #[inline]
    pub(super) fn now() -> Instant {
        Instant::now()
    }

    pub(super) fn since(t: Instant, earlier: Instant) -> Duration {
        t.saturating_duration_since(earlier)
    }

    /// Saturates to a century ahead, which no test or process reaches.
    #[inline]
    pub(super) fn add(t: Instant, d: Duration) -> Instant {
        t.checked_add(d)
            .or_else(|| t.checked_add(Duration::from_secs(100 * 365 * 86_400)))
            .unwrap_or(t)
    }
}

#[cfg(all(
    not(feature = "test-util"),
    any(target_os = "linux", target_os = "android", target_os = "freebsd")
))]
mod imp {
    use rustix::time::{clock_gettime, ClockId};
    use std::time::Duration;

    #[inline]
    pub(super) fn now() -> u64 {
        let ts = clock_gettime(ClockId::MonotonicCoarse);
        // Monotonic clocks start near boot: both fields are non-negative.
        (ts.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec as u64)
    }

    #[inline]
    pub(super) fn add(t: u64, d: Duration) -> u64 {
        t.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    pub(super) fn since(t: u64, earlier: u64) -> Duration {
        Duration::from_nanos(t.saturating_sub(earlier))
    }
}

#[cfg(all(
    not(feature = "test-util"),
    not(any(target_os = "linux", target_os = "android", target_os = "freebsd"))
))]
mod imp {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    static ORIGIN: OnceLock<Instant> = OnceLock::new();

    #[inline]
    pub(super) fn now() -> u64 {
        let origin = *ORIGIN.get_or_init(Instant::now);
        u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    #[inline]
    pub(super) fn add(t: u64, d: Duration) -> u64 {
        t.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    pub(super) fn since(t: u64, earlier: u64) -> Duration {
        Duration::from_nanos(t.saturating_sub(earlier))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_moves_forward_and_saturates() {
        let a = Timestamp::now();
        let b = Timestamp::now();
        assert!(a <= b);
        assert!(a.saturating_add(Duration::from_secs(1)) > b);
        let never = a.saturating_add(Duration::MAX);
        assert!(never > a.saturating_add(Duration::from_secs(10 * 365 * 86_400)));
    }
}
