//! The web server's flags, checked before the run starts: where it
//! listens, its credentials and its base path.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use crate::cli::Cli;

/// `--web-auth user:password`.
#[derive(Clone, Debug, PartialEq)]
pub struct WebAuth {
    pub user: String,
    pub password: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WebConfig {
    /// `--web-host` as given (for messages), and what it resolved to.
    pub host: String,
    pub addr: SocketAddr,
    pub auth: Option<WebAuth>,
    /// `--web-base-path`: empty, or `/prefix` without a trailing slash.
    pub base_path: String,
    /// `--web` was given (else the server came on by default).
    pub explicit: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WebConfigError {
    #[error("--web-host {0}: not an address or a name this machine resolves")]
    Host(String),
    #[error("--web-auth wants user:password (got no colon)")]
    Auth,
    #[error("--web-base-path {0}: want a path like /locusta (letters, digits, - _ . / only)")]
    BasePath(String),
    #[error("--web-host {0} is reachable from other machines: give --web-auth user:password, so nobody else can start or stop runs")]
    OpenWithoutAuth(String),
}

impl WebConfig {
    /// The web server's settings, or `None` when it stays off. `default_on`:
    /// the front end turns it on without `--web` (not headless, no terminal).
    pub fn from_cli(cli: &Cli, default_on: bool) -> Result<Option<WebConfig>, WebConfigError> {
        if !cli.web && !default_on {
            return Ok(None);
        }
        let host = cli.web_host.clone();
        // Locust's "*" means every address.
        let bind = if host == "*" {
            "0.0.0.0"
        } else {
            host.as_str()
        };
        let addr = (bind, cli.web_port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| WebConfigError::Host(host.clone()))?;
        let auth = match &cli.web_auth {
            None => None,
            Some(s) => {
                let (user, password) = s.split_once(':').ok_or(WebConfigError::Auth)?;
                Some(WebAuth {
                    user: user.to_string(),
                    password: password.to_string(),
                })
            }
        };
        if auth.is_none() && !is_loopback(addr.ip()) {
            return Err(WebConfigError::OpenWithoutAuth(host));
        }
        Ok(Some(WebConfig {
            host,
            addr,
            auth,
            base_path: base_path(cli.web_base_path.as_deref().unwrap_or(""))?,
            explicit: cli.web,
        }))
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// `/prefix` (leading slash added, trailing ones dropped; "" and "/" are
/// no prefix).
fn base_path(given: &str) -> Result<String, WebConfigError> {
    let ok = given
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if !ok || given.contains("..") {
        return Err(WebConfigError::BasePath(given.to_string()));
    }
    let trimmed = given.trim_matches('/');
    Ok(if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn web(args: &[&str]) -> Result<Option<WebConfig>, WebConfigError> {
        let mut argv = vec!["locusta"];
        argv.extend_from_slice(args);
        WebConfig::from_cli(&Cli::parse_from(argv), false)
    }

    #[test]
    fn off_unless_asked_or_defaulted() {
        assert_eq!(web(&[]).unwrap(), None);
        let on = web(&["--web"]).unwrap().unwrap();
        assert_eq!(on.addr, "127.0.0.1:8089".parse().unwrap());
        assert!(on.explicit && on.auth.is_none() && on.base_path.is_empty());
    }

    #[test]
    fn open_addresses_need_auth() {
        for host in ["0.0.0.0", "*", "::"] {
            assert_eq!(
                web(&["--web", "--web-host", host]),
                Err(WebConfigError::OpenWithoutAuth(host.into()))
            );
        }
        let c = web(&["--web", "--web-host", "0.0.0.0", "--web-auth", "a:b:c"])
            .unwrap()
            .unwrap();
        assert_eq!(c.auth.unwrap().password, "b:c");
        assert!(web(&["--web", "--web-host", "::1"]).unwrap().is_some());
        assert_eq!(
            web(&["--web", "--web-auth", "nocolon"]),
            Err(WebConfigError::Auth)
        );
    }

    #[test]
    fn base_paths_are_normalised_or_refused() {
        let bp = |p: &str| web(&["--web", "--web-base-path", p]).map(|c| c.unwrap().base_path);
        assert_eq!(bp("locusta/").unwrap(), "/locusta");
        assert_eq!(bp("/a/b").unwrap(), "/a/b");
        assert_eq!(bp("/").unwrap(), "");
        assert!(bp("/a b").is_err());
        assert!(bp("/a/../b").is_err());
        assert!(bp("/<script>").is_err());
    }
}
