//! The table's notion of time.
//!
//! A cache hit has to know whether its entry is still fresh, so it reads the
//! clock. A precise monotonic read (`CLOCK_MONOTONIC`, `Instant::now`: 30 ns
//! on our benchmark machine) costs more than the whole rest of a `get` hit
//! (15 ns), so hits read the kernel's *coarse* monotonic clock
//! (`CLOCK_MONOTONIC_COARSE`, 6 ns) whenever it can decide, and the precise
//! one only near an expiry. `benches/src/bin/clock_lag.rs` measures all of
//! this.
//!
//! # The coarse clock's lag
//!
//! The coarse clock is the precise one (same origin) as of the kernel's last
//! timekeeping update: never ahead, behind by the time since that update.
//! Updates come with the timer tick (`clock_getres` reports its length: 4 ms
//! at `HZ=250`). On our 2-vCPU KVM guest at `HZ=250`, idle and under load,
//! the lag was between 1.1 and 5.2 ms: up to 1.3 ticks, not one. It can be
//! several ticks: when the CPU that keeps time stops taking ticks (a vCPU
//! descheduled by the host, a CPU held in `stop_machine`), the other CPUs
//! take over only after five ticks without an update (`MAX_STALLED_JIFFIES`
//! in the kernel's `tick-sched.c`), and when every CPU stops, the clock
//! catches up only once one runs again. Over 1.2·10⁹ reads in four runs, that
//! happened in one 41 s stretch: 0.3% of its reads lagged two ticks or more,
//! up to 21.1 ms (five ticks and the 1.1 ms offset). Hence results with a
//! 1 ns ttl served 12–16 ms after their store when expiries and hits were
//! both judged on the coarse clock; that scheme also ended ttls early, by up
//! to the lag at the store (half of all 20 ms ttls, by up to 3.9 ms).
//!
//! # What is guaranteed
//!
//! * An expiry counts from a *precise* read ([`Timestamp::expiry`], once per
//!   store), so the coarse clock's lag never cuts a ttl short: a result is
//!   served for at least its ttl.
//! * A hit ([`Timestamp::is_future`]) reads the coarse clock and trusts it
//!   while it says the expiry is more than a *margin* away: eight ticks as
//!   `clock_getres` reports them, clamped to 8–100 ms (32 ms at `HZ=250`,
//!   above the kernel's five-tick takeover and the 21.1 ms seen). Within
//!   the margin, the precise clock decides. So a result is served after its
//!   expiry only while the coarse clock lags by more than the margin, and
//!   then by at most the lag minus the margin. That takes the CPU keeping
//!   time, and the one reading, to have been stopped for most of the margin
//!   (a VM descheduled by its host); nothing in `clock_lag` came close.
//! * Removals judged on the coarse clock alone ([`Timestamp::now`]: the
//!   sweeper, the eviction policy) are never early and at most the lag late;
//!   a result removed late is not served meanwhile, since every hit checks.
//!
//! A hit further than the margin from its expiry costs what it did (one
//! coarse read and a compare: 21 ns for a `get` hit, against 20 ns before);
//! a hit within the margin costs one precise read more (45 ns). A table
//! whose ttl is shorter than the margin pays that on every hit.
//!
//! Platforms without a coarse clock use `std::time::Instant` throughout,
//! which is exact.
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
    /// Reads the cheap clock. Never ahead of the precise clock, so
    /// `now >= expiry` proves that an expiry has passed; `now < expiry`
    /// does not prove the opposite (see the module docs).
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

    /// The expiry of a result stored now to live `ttl`: the precise clock
    /// plus `ttl`, saturating to "never". One precise read.
    #[inline]
    pub(crate) fn expiry(ttl: Duration) -> Self {
        Self(imp::precise()).saturating_add(ttl)
    }

    /// Whether `self`, an expiry, is still ahead: the check of a hit. Never
    /// `false` before the expiry; `true` after it only while the coarse
    /// clock lags by more than the margin (see the module docs).
    #[inline]
    pub(crate) fn is_future(self) -> bool {
        imp::is_future(self.0)
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

    #[inline]
    pub(super) fn precise() -> Instant {
        Instant::now()
    }

    #[inline]
    pub(super) fn is_future(t: Instant) -> bool {
        Instant::now() < t
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
    use rustix::time::{clock_getres, clock_gettime, ClockId, Timespec};
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::time::Duration;

    /// Nanoseconds of a monotonic reading. Monotonic clocks start near
    /// boot: both fields are non-negative.
    #[inline]
    pub(super) fn nanos(ts: Timespec) -> u64 {
        (ts.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec as u64)
    }

    #[inline]
    pub(super) fn now() -> u64 {
        nanos(clock_gettime(ClockId::MonotonicCoarse))
    }

    /// The precise clock the coarse one is a delayed copy of.
    #[inline]
    pub(super) fn precise() -> u64 {
        nanos(clock_gettime(ClockId::Monotonic))
    }

    /// Ticks of the coarse clock a hit trusts it by.
    const MARGIN_TICKS: u64 = 8;
    const MIN_MARGIN: u64 = 8_000_000;
    const MAX_MARGIN: u64 = 100_000_000;

    /// The margin in nanoseconds; 0 until first needed.
    static MARGIN: AtomicU64 = AtomicU64::new(0);

    /// How far before an expiry a hit stops trusting the coarse clock.
    #[inline]
    pub(super) fn margin() -> u64 {
        match MARGIN.load(Relaxed) {
            0 => init_margin(),
            m => m,
        }
    }

    #[cold]
    fn init_margin() -> u64 {
        let m = margin_for(nanos(clock_getres(ClockId::MonotonicCoarse)));
        MARGIN.store(m, Relaxed);
        m
    }

    /// The margin for a coarse clock of resolution `tick` (nanoseconds).
    pub(super) fn margin_for(tick: u64) -> u64 {
        tick.saturating_mul(MARGIN_TICKS)
            .clamp(MIN_MARGIN, MAX_MARGIN)
    }

    #[inline]
    pub(super) fn is_future(t: u64) -> bool {
        let coarse = now();
        if coarse.saturating_add(margin()) < t {
            // Far from the expiry: even lagging by the margin, the coarse
            // clock says it is ahead.
            return true;
        }
        near(coarse, t)
    }

    /// Within the margin: the precise clock decides. Out of line, so that
    /// the common case stays small where it is inlined.
    #[cold]
    #[inline(never)]
    fn near(coarse: u64, t: u64) -> bool {
        // The coarse clock is never ahead: `coarse >= t` means expired.
        coarse < t && precise() < t
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

    /// `now` is already precise.
    #[inline]
    pub(super) fn precise() -> u64 {
        now()
    }

    #[inline]
    pub(super) fn is_future(t: u64) -> bool {
        now() < t
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
        assert!(Timestamp::expiry(Duration::MAX).is_future());
    }

    /// Spins until the precise clock has passed `t`.
    fn wait_past(t: Timestamp) {
        while Timestamp(imp::precise()) <= t {
            std::hint::spin_loop();
        }
    }

    #[test]
    fn the_cheap_clock_is_never_ahead_of_the_precise_one() {
        for _ in 0..100_000 {
            let cheap = Timestamp::now();
            let precise = Timestamp(imp::precise());
            assert!(cheap <= precise);
        }
    }

    #[test]
    fn an_expiry_counts_from_the_precise_clock() {
        // Read in this order, the coarse-based expiry is never later, and
        // is earlier by the coarse clock's lag: the ttl it would give is
        // what the precise one adds back.
        let ttl = Duration::from_secs(60);
        let coarse_based = Timestamp::now().saturating_add(ttl);
        let e = Timestamp::expiry(ttl);
        assert!(e >= coarse_based);
        assert!(e.is_future(), "a minute-long ttl has not passed");
    }

    #[test]
    fn a_short_ttl_ends_on_time_whatever_the_coarse_clock_says() {
        // Before the fix, a 1 ns ttl was served until the coarse clock
        // stepped: up to a tick, and 12-16 ms on a busy VM. Now the first
        // check after the precise clock passes the expiry says "expired",
        // however stale the coarse clock is.
        for _ in 0..1_000 {
            let e = Timestamp::expiry(Duration::from_nanos(1));
            wait_past(e);
            assert!(!e.is_future());
        }
    }

    #[test]
    fn a_ttl_never_ends_early() {
        // Inside the margin and outside it: whenever a check says
        // "expired", the precise clock has passed the expiry.
        for ttl_us in [0, 1, 100, 1_000, 5_000, 40_000] {
            let e = Timestamp::expiry(Duration::from_micros(ttl_us));
            while e.is_future() {
                std::hint::spin_loop();
            }
            assert!(
                Timestamp(imp::precise()) >= e,
                "ttl {ttl_us} µs ended early"
            );
        }
    }

    #[test]
    fn expired_by_the_coarse_clock_is_expired() {
        let e = Timestamp::now();
        assert!(!e.is_future(), "the coarse clock is never ahead");
    }

    #[cfg(all(
        not(feature = "test-util"),
        any(target_os = "linux", target_os = "android", target_os = "freebsd")
    ))]
    #[test]
    fn the_margin_is_eight_ticks_within_bounds() {
        assert_eq!(imp::margin_for(4_000_000), 32_000_000, "HZ=250");
        assert_eq!(imp::margin_for(10_000_000), 80_000_000, "HZ=100");
        assert_eq!(imp::margin_for(1_000_000), 8_000_000, "HZ=1000");
        assert_eq!(imp::margin_for(1), 8_000_000, "a resolution of 1 ns");
        assert_eq!(imp::margin_for(u64::MAX), 100_000_000);
        let tick = imp::nanos(rustix::time::clock_getres(
            rustix::time::ClockId::MonotonicCoarse,
        ));
        assert_eq!(imp::margin(), imp::margin_for(tick));
    }
}
