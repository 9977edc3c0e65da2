//! Issue 7, section 6: with the `tracing` feature, a span per execution
//! (table name, a hash of the key, never the key, and the outcome) and
//! events for takeovers, panics, refusals and mismatches.
//!
//! `cargo test -p idem --features tracing --test tracing`

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use idem::{Error, Eviction, Fingerprint, SingleFlight};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// What the subscriber saw: one line per span (its name and fields, with
/// the fields recorded later appended) and per event.
#[derive(Default, Clone)]
struct Seen(Arc<Mutex<Vec<String>>>);

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl Subscriber for Seen {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut line = format!("span {}", span.metadata().name());
        span.record(&mut Fields(&mut line));
        let mut seen = self.0.lock().unwrap();
        seen.push(line);
        Id::from_u64(seen.len() as u64)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut seen = self.0.lock().unwrap();
        let line = &mut seen[span.into_u64() as usize - 1];
        values.record(&mut Fields(line));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = format!("event {}", event.metadata().level());
        event.record(&mut Fields(&mut line));
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn traced(f: impl AsyncFnOnce()) -> Vec<String> {
    let seen = Seen::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(seen.clone(), || rt.block_on(f()));
    let lines = seen.0.lock().unwrap().clone();
    lines
}

#[test]
fn an_execution_is_a_span_with_the_outcome_and_no_key() {
    let lines = traced(async || {
        let flight: SingleFlight<String, u64, String> =
            SingleFlight::builder().name("payments").build().unwrap();
        flight
            .run("alice@example.com".into(), || async { Ok(1) })
            .await
            .unwrap();
        let _ = flight
            .run("bob".into(), || async { Err("no".to_string()) })
            .await;
        let _ = flight
            .run("carol".into(), || async { panic!("boom") })
            .await;
    });
    let spans: Vec<_> = lines.iter().filter(|l| l.starts_with("span")).collect();
    assert_eq!(spans.len(), 3, "{lines:#?}");
    for (span, outcome) in spans.iter().zip(["ok", "failed", "panicked"]) {
        assert!(
            span.starts_with("span idem.execution table=\"payments\" key_hash="),
            "{span}"
        );
        assert!(span.ends_with(&format!(" outcome={outcome:?}")), "{span}");
    }
    assert!(
        lines.iter().all(|l| !l.contains("alice")),
        "the key leaked: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("event WARN") && l.contains("message=\"boom\"")),
        "{lines:#?}"
    );
}

#[test]
fn refusals_and_mismatches_are_events() {
    let lines = traced(async || {
        let flight: SingleFlight<u64, u64> = SingleFlight::builder()
            .ttl(std::time::Duration::from_secs(60))
            .max_entries(1)
            .eviction(Eviction::Never)
            .build()
            .unwrap();
        flight
            .run_with_fingerprint(1, Fingerprint::of(&1), || async { Ok(1) })
            .await
            .unwrap();
        let full = flight.run(2, || async { Ok(2) }).await;
        assert!(matches!(full, Err(Error::Full { .. })));
        let reused = flight.run_with_fingerprint(1, Fingerprint::of(&2), || async { Ok(2) });
        assert_eq!(reused.await, Err(Error::Mismatch));
    });
    let events: Vec<_> = lines.iter().filter(|l| l.starts_with("event")).collect();
    assert_eq!(events.len(), 2, "{lines:#?}");
    assert!(events[0].contains("reason=\"full\""), "{}", events[0]);
    assert!(events[1].contains("fingerprint mismatch"), "{}", events[1]);
}

#[test]
fn a_takeover_is_an_event() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let lines = traced(async || {
        let flight: SingleFlight<u64, u64> = SingleFlight::new();
        let mut cx = Context::from_waker(Waker::noop());
        let mut leader = Box::pin(flight.run(1, std::future::pending));
        assert!(leader.as_mut().poll(&mut cx).is_pending());
        let mut waiter = Box::pin(flight.run(1, || async { Ok(2) }));
        assert!(waiter.as_mut().poll(&mut cx).is_pending());
        drop(leader);
        assert_eq!(waiter.as_mut().poll(&mut cx), Poll::Ready(Ok(2)));
    });
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("event INFO") && l.contains("takeover")),
        "{lines:#?}"
    );
}

#[idem::idempotent(key = id)]
async fn charge(id: u64) -> u64 {
    id
}

#[test]
fn a_macro_table_is_named_after_its_function() {
    let lines = traced(async || {
        assert_eq!(charge(7).await, 7);
    });
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("span idem.execution table=\"tracing::charge\"")),
        "{lines:#?}"
    );
}
