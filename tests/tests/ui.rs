//! Compile errors of `#[idempotent]`: each file in `tests/ui/` must fail to
//! compile with exactly the diagnostics in its `.stderr` golden.
//!
//! The goldens are recorded with **rustc 1.95.0**, the toolchain this
//! project is checked on: rustc's wording and layout change between
//! releases, so on any other toolchain this test is ignored (run
//! `TRYBUILD=overwrite cargo test -p idem-tests --test ui` on the new
//! toolchain, review the diffs, and move the gate below).

#[rustversion::attr(not(stable(1.95)), ignore = "UI goldens are recorded with rustc 1.95")]
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
}
