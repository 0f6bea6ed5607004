//! `application/x-www-form-urlencoded` bodies and query strings, decoded
//! strictly: a value that is not UTF-8 once percent-decoded, or a broken
//! `%` escape, is an error naming it (a 400), never replaced or a panic.
//! It does not own what the fields mean (`api`).

/// Fields past this many are refused (the body is already at most 64 KiB).
pub const MAX_FIELDS: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FormError {
    #[error(
        "the form is not UTF-8 (send application/x-www-form-urlencoded, percent-encoded UTF-8)"
    )]
    NotUtf8,
    #[error("field {0:?}: a broken %-escape (want %XX with two hex digits)")]
    BadEscape(String),
    #[error("field {0:?}: not UTF-8 once %-decoded")]
    FieldNotUtf8(String),
    #[error("more than {MAX_FIELDS} form fields")]
    TooMany,
}

/// The `(name, value)` pairs in order (names may repeat, as in Locust's
/// `request.form.getlist`).
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    let text = std::str::from_utf8(body).map_err(|_| FormError::NotUtf8)?;
    let mut out = Vec::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        if out.len() == MAX_FIELDS {
            return Err(FormError::TooMany);
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name, name)?;
        let value = decode(value, &name)?;
        out.push((name, value));
    }
    Ok(out)
}

/// One percent-encoded component (`+` is a space); `field` names it in
/// errors.
fn decode(text: &str, field: &str) -> Result<String, FormError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| FormError::BadEscape(short(field)))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::FieldNotUtf8(short(field)))
}

/// A field name for a message, cut so a hostile one cannot flood a log.
fn short(name: &str) -> String {
    name.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_a_browser_sends() {
        let f = parse_form(
            b"user_count=10&spawn_rate=2.5&host=http%3A%2F%2Fa%3A8080&run_time=1h+30m&x",
        )
        .unwrap();
        assert_eq!(f[0], ("user_count".into(), "10".into()));
        assert_eq!(f[2].1, "http://a:8080");
        assert_eq!(f[3].1, "1h 30m");
        assert_eq!(f[4], ("x".into(), "".into()));
        assert_eq!(parse_form(b"").unwrap(), vec![]);
        assert_eq!(parse_form(b"n=%C3%A9").unwrap()[0].1, "é");
    }

    #[test]
    fn refuses_what_is_not_text() {
        assert_eq!(parse_form(b"a=\xff"), Err(FormError::NotUtf8));
        assert_eq!(
            parse_form(b"a=%ff"),
            Err(FormError::FieldNotUtf8("a".into()))
        );
        assert_eq!(parse_form(b"a=%4"), Err(FormError::BadEscape("a".into())));
        assert_eq!(parse_form(b"a=%zz"), Err(FormError::BadEscape("a".into())));
        assert!(parse_form(b"a=%").is_err());
        // A multi-byte character right after % is a broken escape, not a panic.
        assert!(parse_form("a=%é".as_bytes()).is_err());
        let many = "a=1&".repeat(MAX_FIELDS + 1);
        assert_eq!(parse_form(many.as_bytes()), Err(FormError::TooMany));
    }
}
