//! Issue 8: the codec of `Durable`'s records, chosen by figure. JSON (the
//! default) against three binary `serde` formats, on what records hold: a
//! small value, a receipt, and an HTTP response whose body is bytes.
//!
//! `cargo run --release -p idem-benches --bin codecs`
//!
//! Each figure is the median of 7 rounds of one encode or decode in a
//! loop; compare codecs within one run.

use std::hint::black_box;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
struct Item {
    sku: String,
    qty: u32,
    cents: u64,
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
struct Receipt {
    id: String,
    order: u64,
    cents: u64,
    currency: String,
    items: Vec<Item>,
    at: u64,
    note: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
}

fn receipt() -> Receipt {
    Receipt {
        id: "rcpt_01HZX3K9QW8E7R".into(),
        order: 1_234_567,
        cents: 125_000,
        currency: "EUR".into(),
        items: (0..5)
            .map(|i| Item {
                sku: format!("SKU-{i:05}"),
                qty: i + 1,
                cents: 1_999 * u64::from(i + 1),
            })
            .collect(),
        at: 1_796_320_443_582_859,
        note: None,
    }
}

fn response() -> Response {
    let receipts: Vec<Receipt> = (0..20).map(|_| receipt()).collect();
    Response {
        status: 201,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("location".into(), "/payments/123".into()),
        ],
        body: serde_json::to_vec(&receipts).expect("serializable"),
    }
}

type Enc<T> = fn(&T) -> Vec<u8>;
type Dec<T> = fn(&[u8]) -> T;

fn codecs<T: Serialize + DeserializeOwned>() -> [(&'static str, Enc<T>, Dec<T>); 4] {
    [
        (
            "serde_json (default)",
            |v| serde_json::to_vec(v).expect("encodes"),
            |b| serde_json::from_slice(b).expect("decodes"),
        ),
        (
            "postcard",
            |v| postcard::to_stdvec(v).expect("encodes"),
            |b| postcard::from_bytes(b).expect("decodes"),
        ),
        (
            "rmp-serde (MessagePack, named)",
            |v| rmp_serde::to_vec_named(v).expect("encodes"),
            |b| rmp_serde::from_slice(b).expect("decodes"),
        ),
        (
            "bincode 2 (serde)",
            |v| bincode::serde::encode_to_vec(v, bincode::config::standard()).expect("encodes"),
            |b| {
                bincode::serde::decode_from_slice(b, bincode::config::standard())
                    .expect("decodes")
                    .0
            },
        ),
    ]
}

/// Nanoseconds per call of `f`, the median of 7 rounds of `n` calls.
fn time(n: u32, mut f: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[3]
}

fn table<T>(what: &str, value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    println!("\n{what}\n\n| codec | bytes | encode ns | decode ns |\n|---|---:|---:|---:|");
    for (name, enc, dec) in codecs::<T>() {
        let bytes = enc(value);
        assert_eq!(&dec(&bytes), value, "{name} round-trips");
        let n = (2_000_000 / (bytes.len() as u32 + 100)).max(100);
        let e = time(n, || {
            black_box(enc(black_box(value)));
        });
        let d = time(n, || {
            black_box(dec(black_box(&bytes)));
        });
        println!("| {name} | {} | {e:.0} | {d:.0} |", bytes.len());
    }
}

fn main() {
    table("A `u64`", &7_u64);
    table("A receipt (5 items)", &receipt());
    table(
        "An HTTP response (2 headers, a 6.5 kB JSON body as bytes)",
        &response(),
    );
}
