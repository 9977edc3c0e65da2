//! What the server did: `INFO commandstats` (calls per command, since the
//! last `CONFIG RESETSTAT`) and `INFO cpu` (its CPU time).
//!
//! The commands a script runs are counted under their own names as well
//! as under the `EVALSHA` that ran them, so the totals here are commands
//! *executed*, not requests: requests (round trips) are counted by the
//! client ([`Tally::requests`](super::Tally::requests)).

use std::collections::BTreeMap;

use ::redis::aio::MultiplexedConnection;

/// Calls and microseconds of execution per command, e.g. `get`,
/// `evalsha`, `config|resetstat`. A script's time includes its commands'.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commands(pub BTreeMap<String, (u64, u64)>);

impl Commands {
    /// Parses the reply of `INFO commandstats`.
    pub fn parse(info: &str) -> Self {
        let mut calls = BTreeMap::new();
        for line in info.lines() {
            let Some((name, rest)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            let field = |key: &str| -> u64 {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(key))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            };
            calls.insert(name.to_owned(), (field("calls="), field("usec=")));
        }
        Self(calls)
    }

    /// Every command but the bench's own `CONFIG RESETSTAT`.
    pub fn total(&self) -> u64 {
        self.0
            .iter()
            .filter(|(name, _)| name.as_str() != "config|resetstat")
            .map(|(_, (n, _))| n)
            .sum()
    }

    /// The calls of one command.
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).map_or(0, |&(n, _)| n)
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Commands) {
        for (name, (n, usec)) in &other.0 {
            let mine = self.0.entry(name.clone()).or_default();
            mine.0 += n;
            mine.1 += usec;
        }
    }

    /// `evalsha 2.00 (9.1 µs each), get 1.00, …` per call, most frequent
    /// first, the bench's `CONFIG RESETSTAT` left out; scripts with their
    /// mean execution time.
    pub fn per_call(&self, calls: u64) -> String {
        let mut parts: Vec<(&String, &(u64, u64))> = self
            .0
            .iter()
            .filter(|(name, _)| name.as_str() != "config|resetstat")
            .collect();
        parts.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
        parts
            .iter()
            .map(|(name, &(n, usec))| {
                if name.starts_with("eval") && n > 0 {
                    let each = usec as f64 / n as f64;
                    format!("{name} {} ({each:.1} µs each)", per(n, calls))
                } else {
                    format!("{name} {}", per(n, calls))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `n / calls` with 2 decimals, or with 4 when small.
pub fn per(n: u64, calls: u64) -> String {
    let x = n as f64 / calls.max(1) as f64;
    if x != 0.0 && x < 0.01 {
        format!("{x:.4}")
    } else {
        format!("{x:.2}")
    }
}

/// Zeroes the server's command counts (`CONFIG RESETSTAT`).
///
/// # Panics
///
/// If the server does not answer.
pub async fn reset(admin: &mut MultiplexedConnection) {
    ::redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .exec_async(admin)
        .await
        .expect("CONFIG RESETSTAT");
}

/// The server's command counts since the last [`reset`].
///
/// # Panics
///
/// If the server does not answer.
pub async fn commands(admin: &mut MultiplexedConnection) -> Commands {
    let info: String = ::redis::cmd("INFO")
        .arg("commandstats")
        .query_async(admin)
        .await
        .expect("INFO commandstats");
    Commands::parse(&info)
}

/// The server's CPU time so far (user + system, all threads), in seconds.
///
/// # Panics
///
/// If the server does not answer.
pub async fn cpu(admin: &mut MultiplexedConnection) -> f64 {
    let info: String = ::redis::cmd("INFO")
        .arg("cpu")
        .query_async(admin)
        .await
        .expect("INFO cpu");
    info.lines()
        .filter_map(|l| {
            l.strip_prefix("used_cpu_sys:")
                .or_else(|| l.strip_prefix("used_cpu_user:"))
        })
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum()
}

/// Deletes every key (`FLUSHALL`), between measurements.
///
/// # Panics
///
/// If the server does not answer.
pub async fn flush(admin: &mut MultiplexedConnection) {
    ::redis::cmd("FLUSHALL")
        .exec_async(admin)
        .await
        .expect("FLUSHALL");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_parse_and_leave_the_reset_out() {
        let info = "# Commandstats\r\n\
            cmdstat_config|resetstat:calls=1,usec=42,usec_per_call=42.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_get:calls=30,usec=11,usec_per_call=0.37,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_evalsha:calls=20,usec=89,usec_per_call=4.45,rejected_calls=0,failed_calls=0\r\n";
        let c = Commands::parse(info);
        assert_eq!((c.get("get"), c.get("evalsha"), c.total()), (30, 20, 50));
        assert_eq!(c.per_call(10), "get 3.00, evalsha 2.00 (4.5 µs each)");
    }
}
