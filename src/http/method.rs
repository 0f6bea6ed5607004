//! Request types as a small `Copy` value (stats keys use it): the seven
//! HTTP methods the client sends, and custom types a script names when it
//! records a request of another protocol ("WS", "TCP", "grpc").
//!
//! Custom types live in one process-wide interned registry, bounded at
//! [`MAX_CUSTOM`] names of at most [`MAX_CUSTOM_LEN`] printable bytes each:
//! a script or a peer that names more gets [`MethodError`], never
//! unbounded growth (the names are leaked once, at most 64 short strings,
//! so `as_str` stays `&'static str` and lock-free). This module does not
//! decide what a bad name costs the caller (a Lua error for a script, a
//! warning and a dropped row for a peer's report).

use std::fmt;
use std::sync::{Mutex, OnceLock};

/// How many custom request types one process can hold.
pub const MAX_CUSTOM: usize = 64;
/// The longest custom request type, in bytes.
pub const MAX_CUSTOM_LEN: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
    /// A custom request type: an index into the registry.
    Custom(u8),
}

/// Why a name cannot be a custom request type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MethodError {
    #[error("request type must not be empty")]
    Empty,
    #[error("request type is {0} bytes long (at most {MAX_CUSTOM_LEN})")]
    TooLong(usize),
    #[error("request type must be printable ASCII (got {0:?})")]
    NotPrintable(String),
    #[error("too many request types: at most {MAX_CUSTOM} custom ones per process")]
    Full,
}

/// The registry: slots filled in order, never emptied.
static NAMES: [OnceLock<&'static str>; MAX_CUSTOM] = [const { OnceLock::new() }; MAX_CUSTOM];
/// Serializes insertions (reads never lock).
static INSERT: Mutex<()> = Mutex::new(());

impl Method {
    /// The HTTP methods, in their stats order.
    pub const ALL: [Method; 7] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Head,
        Method::Options,
    ];

    /// Distinct values of [`Method::index`]: sizes per-method arrays.
    pub const SLOTS: usize = Method::ALL.len() + MAX_CUSTOM;

    /// A dense index, below [`Method::SLOTS`].
    #[inline]
    pub fn index(self) -> usize {
        match self {
            Method::Get => 0,
            Method::Post => 1,
            Method::Put => 2,
            Method::Patch => 3,
            Method::Delete => 4,
            Method::Head => 5,
            Method::Options => 6,
            Method::Custom(i) => Method::ALL.len() + i as usize,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            // Only `intern` makes a Custom, after filling its slot.
            Method::Custom(i) => NAMES
                .get(i as usize)
                .and_then(|s| s.get())
                .copied()
                .unwrap_or("?"),
        }
    }

    /// Idempotent per RFC 9110 §9.2.2 (GET HEAD PUT DELETE OPTIONS; TRACE
    /// is not sent): the only requests the client may send twice on its own.
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Method::Post | Method::Patch | Method::Custom(_))
    }

    /// An HTTP method, case-insensitive, as Locust accepts
    /// `client.request("get", …)`. Never a custom type.
    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }

    /// A request type as a script or a peer names it (`request_type`),
    /// the one parse path of both: an HTTP method's name in any case is
    /// that method (Locust's `client.request("get", …)`), anything else a
    /// custom type by its exact spelling, registered the first time it is
    /// seen.
    pub fn intern(s: &str) -> Result<Method, MethodError> {
        if let Some(m) = Method::lookup(s) {
            return Ok(m);
        }
        check_name(s)?;
        let _guard = INSERT.lock().unwrap_or_else(|p| p.into_inner());
        // Another thread may have added it while this one waited.
        if let Some(m) = find_custom(s) {
            return Ok(m);
        }
        for (i, slot) in NAMES.iter().enumerate() {
            if slot.get().is_none() {
                let name: &'static str = Box::leak(s.to_owned().into_boxed_str());
                let _ = slot.set(name);
                return Ok(Method::Custom(i as u8));
            }
        }
        Err(MethodError::Full)
    }

    /// The request type `s` names if it exists already: an HTTP method in
    /// any case, else a registered custom type by its exact name;
    /// registers nothing.
    pub fn lookup(s: &str) -> Option<Method> {
        Method::parse(s).or_else(|| find_custom(s))
    }

    /// Every request type this process knows now: HTTP methods, then the
    /// custom ones in registration order.
    pub fn known() -> impl Iterator<Item = Method> {
        let custom = NAMES
            .iter()
            .enumerate()
            .take_while(|(_, s)| s.get().is_some())
            .map(|(i, _)| Method::Custom(i as u8));
        Method::ALL.into_iter().chain(custom)
    }
}

fn find_custom(s: &str) -> Option<Method> {
    NAMES
        .iter()
        .map_while(|slot| slot.get())
        .position(|name| *name == s)
        .map(|i| Method::Custom(i as u8))
}

fn check_name(s: &str) -> Result<(), MethodError> {
    if s.is_empty() {
        return Err(MethodError::Empty);
    }
    if s.len() > MAX_CUSTOM_LEN {
        return Err(MethodError::TooLong(s.len()));
    }
    if !s.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err(MethodError::NotPrintable(s.escape_debug().to_string()));
    }
    Ok(())
}

/// HTTP methods in their fixed order, then custom types by name: the same
/// order in every process, whatever order each registered them in.
impl Ord for Method {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (Method::Custom(a), Method::Custom(b)) if a != b => self.as_str().cmp(other.as_str()),
            _ => self.index().cmp(&other.index()),
        }
    }
}

impl PartialOrd for Method {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_types_intern_once_and_keep_their_spelling() {
        let ws = Method::intern("WS-test").unwrap();
        assert_eq!(ws, Method::intern("WS-test").unwrap());
        assert_eq!(ws.as_str(), "WS-test");
        assert_eq!(Method::intern("GET").unwrap(), Method::Get);
        assert_eq!(Method::intern("get").unwrap(), Method::Get);
        assert!(matches!(Method::intern("get-x"), Ok(Method::Custom(_))));
        assert_eq!(Method::lookup("get"), Some(Method::Get));
        assert_eq!(Method::parse("WS-test"), None);
        assert!(Method::index(ws) < Method::SLOTS);
        assert!(Method::Options < ws);
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(Method::intern(""), Err(MethodError::Empty));
        assert_eq!(
            Method::intern(&"x".repeat(33)),
            Err(MethodError::TooLong(33))
        );
        assert!(matches!(
            Method::intern("a\tb"),
            Err(MethodError::NotPrintable(_))
        ));
        assert!(matches!(
            Method::intern("é"),
            Err(MethodError::NotPrintable(_))
        ));
    }
}
