//! Rate-limited warnings about what peers send. A peer decides how often
//! it misbehaves, so a log line per bad message would let it fill the
//! disk (20,000 malformed messages, 20,000 lines): each kind of warning
//! is logged at most once per [`WINDOW`], and what was held back is
//! counted and said in one line when the window ends.
//!
//! Owns the bookkeeping only; callers decide what is a kind and what the
//! line says.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// At most one line per kind this often.
pub const WINDOW: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Kind {
    /// When the last line of this kind was logged.
    logged_at: Option<Instant>,
    suppressed: u64,
}

/// Warnings by kind, each logged at most once per [`WINDOW`].
#[derive(Default)]
pub struct Warnings {
    kinds: BTreeMap<&'static str, Kind>,
}

impl Warnings {
    /// Log `line()` as a warning unless a `kind` warning was logged less
    /// than [`WINDOW`] ago; then only count it. `line` is only called
    /// when a line is written, so a flood costs no formatting.
    pub fn warn(&mut self, kind: &'static str, now: Instant, line: impl FnOnce() -> String) {
        let k = self.kinds.entry(kind).or_default();
        if k.logged_at
            .is_some_and(|t| now.saturating_duration_since(t) < WINDOW)
        {
            k.suppressed = k.suppressed.saturating_add(1);
            return;
        }
        if k.suppressed > 0 {
            log::warn!("… {} more `{kind}` warnings suppressed", k.suppressed);
            k.suppressed = 0;
        }
        k.logged_at = Some(now);
        log::warn!("{}", line());
    }

    /// Say how many warnings were held back in windows that have ended
    /// (`all`: in every window, at exit).
    pub fn flush(&mut self, now: Instant, all: bool) {
        for (kind, k) in &mut self.kinds {
            let ended = k
                .logged_at
                .is_none_or(|t| now.saturating_duration_since(t) >= WINDOW);
            if k.suppressed > 0 && (ended || all) {
                log::warn!("… {} more `{kind}` warnings suppressed", k.suppressed);
                k.suppressed = 0;
            }
        }
    }

    /// Warnings held back and not yet said (tests).
    pub fn suppressed(&self, kind: &str) -> u64 {
        self.kinds.get(kind).map_or(0, |k| k.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_window_and_the_rest_counted() {
        let start = Instant::now();
        let mut w = Warnings::default();
        for _ in 0..1000 {
            w.warn("malformed", start, || "bad".into());
        }
        assert_eq!(w.suppressed("malformed"), 999);
        w.warn("other kind", start, || "x".into());
        assert_eq!(w.suppressed("other kind"), 0);
        w.flush(start + Duration::from_secs(1), false);
        assert_eq!(w.suppressed("malformed"), 999, "window still open");
        w.flush(start + WINDOW, false);
        assert_eq!(w.suppressed("malformed"), 0);
        w.warn("malformed", start + WINDOW, || "again".into());
        w.warn("malformed", start + WINDOW, || "held".into());
        w.flush(start + WINDOW, true);
        assert_eq!(w.suppressed("malformed"), 0);
    }
}
