//! Who used the machine's CPU during a measurement: this process, the
//! report's `redis-server`, and everyone else (read from `/proc`, in clock
//! ticks of 10 ms; Linux only, zeros elsewhere).

use std::time::Instant;

/// CPU time used so far, in clock ticks: by the whole machine (busy,
/// hypervisor steal included), by this process, by the server.
#[derive(Debug, Clone, Copy)]
pub struct Ticks {
    at: Instant,
    busy: u64,
    mine: u64,
    server: u64,
}

/// Clock ticks per second (`USER_HZ`, 100 on Linux).
const HZ: f64 = 100.0;

impl Ticks {
    /// The counts now; `server` is the server's process id.
    pub fn now(server: u32) -> Self {
        Self {
            at: Instant::now(),
            busy: machine_busy().unwrap_or(0),
            mine: process_ticks("self").unwrap_or(0),
            server: process_ticks(&server.to_string()).unwrap_or(0),
        }
    }

    /// This process's CPU time since `self`, in seconds.
    pub fn mine_since(&self, later: &Ticks) -> f64 {
        later.mine.saturating_sub(self.mine) as f64 / HZ
    }

    /// The share of the machine's CPU capacity between `self` and `later`
    /// that went to other processes than this one and the server (or was
    /// stolen by the hypervisor).
    pub fn others_share(&self, later: &Ticks) -> f64 {
        let busy = later.busy.saturating_sub(self.busy);
        let ours = later.mine.saturating_sub(self.mine) + later.server.saturating_sub(self.server);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let capacity = later.at.duration_since(self.at).as_secs_f64() * HZ * cpus;
        busy.saturating_sub(ours) as f64 / capacity.max(1.0)
    }
}

/// user + nice + system + irq + softirq + steal, from `/proc/stat`, in
/// clock ticks (`None` off Linux).
pub fn machine_busy() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    Some(cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + cpu.get(7).copied().unwrap_or(0))
}

/// utime + stime of `/proc/<pid>/stat` (all threads; `pid` may be
/// `self`), in clock ticks (`None` off Linux or for a process gone).
pub fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}
