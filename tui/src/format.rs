//! How numbers read on the dashboard: times, counts, rates, sizes and
//! durations, each as short as it can be and stable in width.
//!
//! Owns only text formatting; where a number goes is the views' business.

use std::time::Duration;

/// A time in ms as locusta's console tables show it: 2 decimals under
/// 10 ms, 1 under 100 ms, whole milliseconds above.
pub fn ms(ms: f64) -> String {
    if ms == 0.0 {
        "0".to_string()
    } else if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// A rate (per second): one decimal.
pub fn rate(per_sec: f64) -> String {
    format!("{per_sec:.1}")
}

/// A percentage of a fraction: two decimals.
pub fn percent(fraction: f64) -> String {
    format!("{:.2}%", fraction * 100.0)
}

/// Bytes as a whole number (response sizes are small and exact).
pub fn size(bytes: f64) -> String {
    format!("{bytes:.0}")
}

/// Bytes with a binary unit: `512 B`, `3.4 MiB`.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Elapsed time as `H:MM:SS`.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A span of seconds as `45s`, `2m05s`, `1h02m`.
pub fn span(secs: u64) -> String {
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, secs / 60 % 60)
    }
}

/// A spawn rate as typed: `5`, `0.5`, `12.25`.
pub fn spawn_rate(rate: f64) -> String {
    format!("{rate}")
}

/// A chart axis value: whole numbers from 10 up, else up to 2 decimals.
pub fn axis(v: f64) -> String {
    if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// `text` cut to `width` characters, ending in `…` when cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut s: String = text.chars().take(width - 1).collect();
    s.push('…');
    s
}

/// `text` cut to `width` characters by replacing its middle with `…`, so
/// both the start and the end of a long URL stay readable.
pub fn fit_middle(text: &str, width: usize) -> String {
    let len = text.chars().count();
    if len <= width {
        return text.to_string();
    }
    if width < 8 {
        return fit(text, width);
    }
    let head = (width - 1) / 2;
    let tail = width - 1 - head;
    let mut s: String = text.chars().take(head).collect();
    s.push('…');
    s.extend(text.chars().skip(len - tail));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(ms(0.0), "0");
        assert_eq!(ms(0.414), "0.41");
        assert_eq!(ms(12.34), "12.3");
        assert_eq!(ms(145.6), "146");
        assert_eq!(rate(1234.56), "1234.6");
        assert_eq!(percent(0.0125), "1.25%");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 + 400 * 1024), "3.4 MiB");
        assert_eq!(clock(Duration::from_secs(3723)), "1:02:03");
        assert_eq!(span(45), "45s");
        assert_eq!(span(125), "2m05s");
        assert_eq!(span(3720), "1h02m");
        assert_eq!(spawn_rate(5.0), "5");
        assert_eq!(spawn_rate(0.5), "0.5");
        assert_eq!(axis(1234.4), "1234");
        assert_eq!(axis(2.5), "2.5");
        assert_eq!(axis(0.0), "0");
        assert_eq!(fit("/products/123", 8), "/produc…");
        assert_eq!(fit("/a", 8), "/a");
        assert_eq!(fit_middle("/api/v1/resource/017", 12), "/api/…ce/017");
        assert_eq!(fit_middle("/a", 12), "/a");
    }
}
