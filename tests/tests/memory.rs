//! Memory given back: a table's hash tables shrink once most of their
//! entries are gone, not only after a sweep. Its own binary, because it
//! installs a counting global allocator.

use std::alloc::System;

use idem::SingleFlight;
use idem_tests::{Gate, Probe};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed, process-wide.
fn net() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

#[test]
fn a_burst_of_concurrent_keys_is_given_back_when_its_flights_end() {
    // A table that stores nothing holds an entry per running flight; 20,000
    // at once grow its shards' tables, which used to stay that big.
    let flight: SingleFlight<u64, u64, ()> = SingleFlight::new();
    let before = net();
    let gate = &Gate::new();
    let mut calls: Vec<_> = (0..20_000u64)
        .map(|k| {
            Probe::new(flight.run(k, move || async move {
                gate.wait().await;
                Ok(k)
            }))
        })
        .collect();
    for call in &mut calls {
        call.pending();
    }
    let during = net() - before;
    gate.open();
    for call in &mut calls {
        call.ready().unwrap();
    }
    drop(calls);
    assert_eq!(flight.len(), 0);
    let after = net() - before;
    assert!(
        after < during / 20,
        "{after} bytes still held after the flights ended ({during} while they ran)"
    );
}
