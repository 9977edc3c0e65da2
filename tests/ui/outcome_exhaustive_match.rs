// `Outcome` is `#[non_exhaustive]`: outcomes will be added (issue 7), so a
// match outside idem must have a wildcard arm.
use idem::Outcome;

fn describe(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Executed => "ran",
        Outcome::Coalesced => "joined",
        Outcome::Cached => "replayed",
    }
}

fn main() {
    let _ = describe(Outcome::Cached);
}
