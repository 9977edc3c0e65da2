use idem::{idempotent, SingleFlight};

// A typo in the return type, or in a flight, is reported once, by rustc.

#[idempotent(key = id)]
async fn unknown_return_type(id: u64) -> Strin {
    id.to_string()
}

#[idempotent(key = id)]
async fn unknown_result_type(id: u64) -> Result<u64, Strin> {
    Ok(id)
}

static FLIGHT: std::sync::LazyLock<SingleFlight<u64, u64>> = std::sync::LazyLock::new(SingleFlight::new);

#[idempotent(key = id, flight = FLIGHTT)]
async fn unknown_flight(id: u64) -> u64 {
    id
}

#[idempotent(key = idd, flight = FLIGHT)]
async fn unknown_key_with_a_flight(id: u64) -> u64 {
    id
}

fn main() {}
