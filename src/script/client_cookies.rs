//! The per-user cookie jar behind `self.client` (helper of `client`).
//!
//! Deliberately simple, like a load test needs and unlike a browser: one
//! jar per user, shared by every origin that user talks to. `Set-Cookie`
//! stores `name=value` (replacing a cookie of the same name); `Max-Age <= 0`,
//! or an `Expires` date in the past when there is no `Max-Age`, deletes it.
//! `Domain`, `Path`, `Secure`, `HttpOnly`, `SameSite` and future expiry
//! times are ignored: a kept cookie is sent with every later request of
//! that user, to any origin, until the server deletes or replaces it.

use std::time::{SystemTime, UNIX_EPOCH};

/// `name=value` pairs in the order they were first set.
#[derive(Default, Debug)]
pub(crate) struct CookieJar {
    pub(crate) cookies: Vec<(Box<str>, Box<str>)>,
}

impl CookieJar {
    pub(crate) fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }

    pub(crate) fn set(&mut self, name: &str, value: &str) {
        match self.cookies.iter_mut().find(|(n, _)| &**n == name) {
            Some((_, v)) => {
                if &**v != value {
                    *v = value.into();
                }
            }
            None => self.cookies.push((name.into(), value.into())),
        }
    }

    pub(crate) fn remove(&mut self, name: &str) {
        self.cookies.retain(|(n, _)| &**n != name);
    }

    pub(crate) fn clear(&mut self) {
        self.cookies.clear();
    }

    /// Append the `Cookie:` header value (`a=1; b=2`) to `out`.
    pub(crate) fn write_header(&self, out: &mut String) {
        for (i, (name, value)) in self.cookies.iter().enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            out.push_str(name);
            out.push('=');
            out.push_str(value);
        }
    }

    /// Apply one `Set-Cookie` header value. Anything unparseable is ignored
    /// (a server's bad header must not fail the user).
    pub(crate) fn apply_set_cookie(&mut self, header: &[u8], now_unix: i64) {
        let Ok(text) = std::str::from_utf8(header) else {
            return;
        };
        let mut parts = text.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            return;
        }
        let mut max_age_delete = None;
        let mut expired = false;
        for attr in parts {
            let (key, val) = attr.split_once('=').unwrap_or((attr, ""));
            let key = key.trim();
            if key.eq_ignore_ascii_case("max-age") {
                if let Ok(n) = val.trim().parse::<i64>() {
                    max_age_delete = Some(n <= 0);
                }
            } else if key.eq_ignore_ascii_case("expires") {
                if let Some(t) = parse_cookie_date(val) {
                    expired = t <= now_unix;
                }
            }
        }
        if max_age_delete.unwrap_or(expired) {
            self.remove(name);
        } else {
            self.set(name, value);
        }
    }
}

/// Seconds since the Unix epoch, now.
pub(crate) fn now_unix() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// A cookie date (RFC 6265 §5.1.1, which accepts IMF-fixdate, RFC 850,
/// asctime and the Netscape `01-Jan-1970` forms) as Unix seconds.
pub(crate) fn parse_cookie_date(s: &str) -> Option<i64> {
    let (mut time, mut day, mut month, mut year) = (None, None, None, None);
    let is_delim = |c: char| !(c.is_ascii_alphanumeric() || c == ':');
    for token in s.split(is_delim).filter(|t| !t.is_empty()) {
        if time.is_none() {
            if let Some(t) = parse_time(token) {
                time = Some(t);
                continue;
            }
        }
        let digits = token.bytes().take_while(u8::is_ascii_digit).count();
        if day.is_none() && (1..=2).contains(&digits) {
            day = token[..digits].parse::<u32>().ok();
            continue;
        }
        if month.is_none() && token.len() >= 3 {
            const MONTHS: [&str; 12] = [
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ];
            if let Some(m) = MONTHS
                .iter()
                .position(|m| token[..3].eq_ignore_ascii_case(m))
            {
                month = Some(m as u32 + 1);
                continue;
            }
        }
        if year.is_none() && (2..=4).contains(&digits) {
            year = token[..digits].parse::<i64>().ok();
            continue;
        }
    }
    let (h, mi, sec) = time?;
    let (day, month, mut year) = (day?, month?, year?);
    if (70..=99).contains(&year) {
        year += 1900;
    } else if (0..=69).contains(&year) {
        year += 2000;
    }
    if !(1..=31).contains(&day) || year < 1601 || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + (h * 3600 + mi * 60 + sec) as i64)
}

/// `hh:mm:ss` (1–2 digits each, trailing non-digits allowed).
fn parse_time(token: &str) -> Option<(u32, u32, u32)> {
    let mut it = token.splitn(3, ':');
    let mut field = |last: bool| -> Option<u32> {
        let f = it.next()?;
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=2).contains(&digits) || (!last && digits != f.len()) {
            return None;
        }
        f[..digits].parse().ok()
    };
    Some((field(false)?, field(false)?, field(true)?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_cookie_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_cookie_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_cookie_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_cookie_date("Sun Nov  6 08:49:37 1994"),
            Some(784_111_777)
        );
        assert_eq!(parse_cookie_date("garbage"), None);
        assert_eq!(parse_cookie_date(""), None);
    }

    #[test]
    fn jar() {
        let mut j = CookieJar::default();
        let now = 1_000_000_000;
        j.apply_set_cookie(b"a=1; Path=/; HttpOnly", now);
        j.apply_set_cookie(b"b = two ; Max-Age=60", now);
        j.apply_set_cookie(b"noequals", now);
        j.apply_set_cookie(b"=x", now);
        j.apply_set_cookie(b"\xff=1", now);
        let mut s = String::new();
        j.write_header(&mut s);
        assert_eq!(s, "a=1; b=two");
        j.apply_set_cookie(b"a=; Max-Age=0", now);
        j.apply_set_cookie(b"b=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT", now);
        assert!(j.is_empty());
        j.apply_set_cookie(
            b"c=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=10",
            now,
        );
        assert_eq!(j.cookies.len(), 1, "Max-Age wins over Expires");
    }
}
