//! Bounds on what a script may cost, and how a script ends a run.
//!
//! Owns the limits a Lua state runs under ([`ScriptLimits`]: time without
//! yielding, response body size, Lua heap size), their flag syntax
//! ([`parse_size`]), the cross-thread "the run is stopping" clock the
//! watchdog reads ([`RunStop`]), and the process-wide exit code asked for
//! by `locusta.quit(n)` / `os.exit(n)` ([`quit_requested`]) or set as
//! `locusta.process_exit_code` ([`process_exit_code`]). Enforcement
//! lives where the cost is paid: `watchdog` (time), `client_request`
//! (bodies), `runtime::state` (memory).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default for `--max-blocking-time`.
pub const DEFAULT_MAX_BLOCKING: Duration = Duration::from_secs(5);
/// Default for `--max-body-size`.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024 * 1024;
/// The smallest Lua heap limit we default to, whatever the RAM.
const MIN_DEFAULT_HEAP: usize = 256 * 1024 * 1024;

/// What one Lua state may cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptLimits {
    /// Lua code running this long without yielding gets an error.
    pub max_blocking: Duration,
    /// Response bodies above this fail the request.
    pub max_body: usize,
    /// Bytes of Lua heap per state (per shard); `None`: no limit.
    pub lua_memory: Option<usize>,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_blocking: DEFAULT_MAX_BLOCKING,
            max_body: DEFAULT_MAX_BODY,
            lua_memory: None,
        }
    }
}

/// Default Lua heap limit per state: half the machine's RAM shared by the
/// shards (so a runaway script fails in Lua, not in the kernel's OOM
/// killer), at least [`MIN_DEFAULT_HEAP`].
pub fn default_lua_memory(shards: usize) -> usize {
    // SAFETY: sysconf only reads system constants.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages <= 0 || page <= 0 {
        return MIN_DEFAULT_HEAP;
    }
    let ram = (pages as u64).saturating_mul(page as u64);
    let share = ram / 2 / shards.max(1) as u64;
    (share.min(usize::MAX as u64) as usize).max(MIN_DEFAULT_HEAP)
}

/// `64MiB`, `512k`, `1G`, `1048576`: a size in bytes (binary units; `B`,
/// `iB` and case are optional).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let bad = || format!("'{s}' is not a size (examples: 1048576, 512KiB, 64MiB, 1GiB)");
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let lower = lower.strip_suffix('i').unwrap_or(lower);
    let (num, mult) = match lower.as_bytes().last() {
        Some(b'k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some(b'm') => (&lower[..lower.len() - 1], 1 << 20),
        Some(b'g') => (&lower[..lower.len() - 1], 1 << 30),
        _ => (lower, 1),
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    let bytes = v * mult as f64;
    if !(bytes >= 1.0 && bytes.is_finite() && bytes < (1u64 << 50) as f64) {
        return Err(bad());
    }
    Ok(bytes as usize)
}

/// A size as people write it: `64 MiB`, `512 KiB`, `100 bytes`.
pub fn format_size(n: usize) -> String {
    const UNITS: [(usize, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if n >= unit && n.is_multiple_of(unit) {
            return format!("{} {name}", n / unit);
        }
    }
    for (unit, name) in UNITS {
        if n >= unit {
            return format!("{:.1} {name}", n as f64 / unit as f64);
        }
    }
    format!("{n} bytes")
}

/// A duration as people write it: `5 s`, `250 ms`, `1.5 s`.
pub fn format_secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// When the run must be over, told by the control thread to every shard's
/// watchdog (an atomic: the shard thread may be stuck in Lua and cannot
/// read its command channel). Set when a stop is asked (now + stop
/// timeout) or the engine shuts down (now); cleared when a run starts.
#[derive(Debug)]
pub struct RunStop {
    base: Instant,
    /// Milliseconds since `base`; `u64::MAX`: no stop asked.
    deadline_ms: AtomicU64,
}

impl RunStop {
    pub fn new() -> Arc<RunStop> {
        Arc::new(RunStop {
            base: Instant::now(),
            deadline_ms: AtomicU64::new(u64::MAX),
        })
    }

    /// Users must be done within `grace` from now.
    pub fn stop_within(&self, grace: Duration) {
        let at = self.base.elapsed().saturating_add(grace);
        let ms = at.as_millis().min(u64::MAX as u128 - 1) as u64;
        // A later stop never postpones an earlier deadline.
        self.deadline_ms.fetch_min(ms, Ordering::Relaxed);
    }

    /// A new run starts: no deadline.
    pub fn clear(&self) {
        self.deadline_ms.store(u64::MAX, Ordering::Relaxed);
    }

    /// Whether the deadline has passed at `now`.
    pub fn passed(&self, now: Instant) -> bool {
        let d = self.deadline_ms.load(Ordering::Relaxed);
        d != u64::MAX && now.saturating_duration_since(self.base).as_millis() >= u128::from(d)
    }
}

/// No quit asked.
const NO_QUIT: i64 = i64::MIN;
static QUIT: AtomicI64 = AtomicI64::new(NO_QUIT);

/// Ask the run to stop and the process to exit with `code` (the first
/// request wins). Front ends poll [`quit_requested`].
pub fn request_quit(code: i32) {
    let _ = QUIT.compare_exchange(NO_QUIT, i64::from(code), Ordering::SeqCst, Ordering::SeqCst);
}

/// The exit code a script asked for with `locusta.quit(n)` / `os.exit(n)`.
pub fn quit_requested() -> Option<i32> {
    match QUIT.load(Ordering::SeqCst) {
        NO_QUIT => None,
        c => Some(c as i32),
    }
}

/// No `locusta.process_exit_code` set.
const NO_CODE: i64 = i64::MIN;
static PROCESS_EXIT_CODE: AtomicI64 = AtomicI64::new(NO_CODE);

/// `locusta.process_exit_code = code` (Locust's
/// `environment.process_exit_code`): the exit status, unless
/// `locusta.quit(n)` was called; `None` (Lua's nil) unsets it. Shared by
/// every shard's Lua state: the last assignment wins. Returns whether
/// `code` was in 0..=255 (else nothing changes).
pub fn set_process_exit_code(code: Option<i64>) -> bool {
    match code {
        None => PROCESS_EXIT_CODE.store(NO_CODE, Ordering::SeqCst),
        Some(c) if (0..=255).contains(&c) => PROCESS_EXIT_CODE.store(c, Ordering::SeqCst),
        Some(_) => return false,
    }
    true
}

/// The exit status the script set as `locusta.process_exit_code`.
pub fn process_exit_code() -> Option<i32> {
    match PROCESS_EXIT_CODE.load(Ordering::SeqCst) {
        NO_CODE => None,
        c => Some(c as i32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        for bad in ["", "0", "-1", "x", "1T", "nan", "1e300"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(64 << 20), "64 MiB");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(100), "100 bytes");
        assert_eq!(format_secs(Duration::from_secs(5)), "5 s");
        assert_eq!(format_secs(Duration::from_millis(300)), "300 ms");
    }

    #[test]
    fn run_stop_deadline() {
        let s = RunStop::new();
        assert!(!s.passed(Instant::now()));
        s.stop_within(Duration::ZERO);
        assert!(s.passed(Instant::now()));
        s.stop_within(Duration::from_secs(100));
        assert!(
            s.passed(Instant::now()),
            "a later stop keeps the earlier deadline"
        );
        s.clear();
        assert!(!s.passed(Instant::now()));
    }
}
