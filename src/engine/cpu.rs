//! The process's CPU use, as Locust reads it for `current_cpu_usage` and
//! its `cpu_warning`: [`CpuMeter`] for a reading since the previous one
//! (workers put it in their heartbeats), [`CpuWatch`] for the warning a
//! run logs once, and fires as the script's `cpu_warning` event, when the
//! load box itself is saturated. It does not own what a master makes of a
//! worker's reading (`cluster::network`).

use std::time::{Duration, Instant};

/// Locust's `CPU_WARNING_THRESHOLD`.
pub const CPU_WARNING_PERCENT: f64 = 90.0;
/// Locust's `CPU_MONITOR_INTERVAL`.
const CPU_MONITOR_INTERVAL: Duration = Duration::from_secs(5);

/// Process CPU use since the previous reading, in % of the CPUs this
/// process may use. A Python worker is one thread, so Locust reads its
/// psutil `cpu_percent` against a 90 % threshold; locusta spans every core
/// it may use, and "90 % of them" is what keeps that threshold meaning
/// "this box is saturated".
pub(crate) struct CpuMeter {
    last: (Instant, Duration),
    cpus: f64,
}

impl CpuMeter {
    pub(crate) fn new() -> Self {
        CpuMeter {
            last: (Instant::now(), process_cpu()),
            cpus: super::allowed_cpu_count() as f64,
        }
    }

    pub(crate) fn percent(&mut self) -> f64 {
        let now = (Instant::now(), process_cpu());
        let wall = now.0.duration_since(self.last.0).as_secs_f64();
        let cpu = now.1.saturating_sub(self.last.1).as_secs_f64();
        self.last = now;
        if wall > 0.0 {
            // Clock granularity can put a saturated process a hair over.
            (100.0 * cpu / wall / self.cpus).min(100.0)
        } else {
            0.0
        }
    }
}

/// Every [`CPU_MONITOR_INTERVAL`], a reading; the first one over
/// [`CPU_WARNING_PERCENT`] is returned once per process (Locust's
/// `cpu_warning_emitted`).
pub(crate) struct CpuWatch {
    meter: CpuMeter,
    read_at: Instant,
    warned: bool,
}

impl CpuWatch {
    pub(crate) fn new() -> Self {
        CpuWatch {
            meter: CpuMeter::new(),
            read_at: Instant::now(),
            warned: false,
        }
    }

    /// Call about once a second; `Some(percent)` the first time the
    /// process is over the threshold.
    pub(crate) fn check(&mut self, now: Instant) -> Option<f64> {
        if self.warned || now.duration_since(self.read_at) < CPU_MONITOR_INTERVAL {
            return None;
        }
        self.read_at = now;
        let percent = self.meter.percent();
        if percent > CPU_WARNING_PERCENT {
            self.warned = true;
            return Some(percent);
        }
        None
    }
}

fn process_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
