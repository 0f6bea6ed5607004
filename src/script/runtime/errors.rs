//! Lua errors as users read them: the innermost message without mlua's
//! prefixes ([`error_text`]), the traceback of an error that escaped the
//! prelude's handlers, and load-time errors located at the script's line.

use crate::script::{ScriptError, ScriptSource};

/// The message of a Lua error as a user wants to read it: the innermost
/// cause, without mlua's "runtime error:" prefix or traceback.
pub fn error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => error_text(cause),
        mlua::Error::RuntimeError(m) => strip_traceback(m).to_string(),
        mlua::Error::SyntaxError { message, .. } => strip_traceback(message).to_string(),
        mlua::Error::BadArgument {
            to,
            pos,
            name,
            cause,
        } => {
            let arg = match name {
                Some(n) => format!("bad argument '{n}'"),
                None => format!("bad argument #{pos}"),
            };
            match to {
                Some(to) => format!("{arg} to '{to}': {}", error_text(cause)),
                None => format!("{arg}: {}", error_text(cause)),
            }
        }
        mlua::Error::WithContext { context, cause } => {
            format!("{context}: {}", error_text(cause))
        }
        other => other.to_string(),
    }
}

fn strip_traceback(m: &str) -> &str {
    match m.find("\nstack traceback:") {
        Some(i) => &m[..i],
        None => m,
    }
}

/// (message, traceback) of an error that escaped the prelude's handlers.
pub(super) fn split_traceback(e: &mlua::Error) -> (String, String) {
    let message = error_text(e);
    let traceback = match e {
        mlua::Error::CallbackError { traceback, .. } => traceback.clone(),
        mlua::Error::RuntimeError(m) => m
            .find("\nstack traceback:")
            .map(|i| m[i + 1..].to_string())
            .unwrap_or_default(),
        _ => String::new(),
    };
    (message, traceback)
}

/// A load-time error: `file:line: message` when Lua knows the line, else
/// prefixed with the script's path.
pub(super) fn load_error(src: &ScriptSource, e: &mlua::Error) -> ScriptError {
    let mut message = error_text(e);
    let has_location = message
        .split_once(':')
        .map(|(_, rest)| {
            rest.split_once(':').is_some_and(|(line, _)| {
                !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit())
            })
        })
        .unwrap_or(false);
    if !has_location {
        // A Rust callback's error: find the script's line in mlua's traceback.
        let path = src.path.display().to_string();
        let line = match e {
            mlua::Error::CallbackError { traceback, .. } => traceback
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with(&path))
                .and_then(|l| {
                    let rest = &l[path.len()..];
                    let rest = rest.strip_prefix(':')?;
                    let n: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                    (!n.is_empty()).then_some(n)
                }),
            _ => None,
        };
        message = match line {
            Some(n) => format!("{path}:{n}: {message}"),
            None => format!("{path}: {message}"),
        };
    }
    ScriptError::Load { message }
}
