//! Console output that never panics: the tables on stdout, error lines on
//! stderr.
//!
//! `print!` panics when stdout is a closed pipe (`| head -1`; Rust ignores
//! SIGPIPE, so the write gets EPIPE) or a full disk (`> /dev/full`), which
//! lost the final CSV files and exit status. Here a closed stdout stops
//! printing for the rest of the run, and any other write error is said once
//! on stderr; the run, its CSV files and its exit status carry on. This
//! module owns how text reaches the console, not what the text is.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Stdout's reader went away (EPIPE): nothing more is printed.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// A stdout write error other than EPIPE was already reported.
static STDOUT_ERROR_SAID: AtomicBool = AtomicBool::new(false);

/// What a failed stdout write means for the next ones.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Written,
    /// EPIPE: the reader is gone for good.
    Closed,
    /// Anything else (ENOSPC, EIO): later writes may work again.
    Failed,
}

fn classify(result: std::io::Result<()>) -> Outcome {
    match result {
        Ok(()) => Outcome::Written,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Outcome::Closed,
        Err(_) => Outcome::Failed,
    }
}

/// Write `text` to stdout and flush it. Never panics; see the module doc.
pub fn print(text: &str) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let result = {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes()).and_then(|()| out.flush())
    };
    let error = result.as_ref().err().map(ToString::to_string);
    match classify(result) {
        Outcome::Written => {}
        Outcome::Closed => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            log::debug!("stdout closed by its reader: console tables are no longer printed");
        }
        Outcome::Failed => {
            if !STDOUT_ERROR_SAID.swap(true, Ordering::Relaxed) {
                eprint_line(&format!(
                    "warning: cannot print to stdout ({}): console tables are lost; \
                     CSV files and the exit status are unaffected",
                    error.unwrap_or_default()
                ));
            }
        }
    }
}

/// A line on stderr; a failure to write it is ignored (there is nowhere
/// left to say so), unlike `eprintln!`, which panics.
pub fn eprint_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.write_all(b"\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    #[test]
    fn epipe_closes_and_other_errors_only_fail() {
        assert_eq!(classify(Ok(())), Outcome::Written);
        assert_eq!(
            classify(Err(Error::from(ErrorKind::BrokenPipe))),
            Outcome::Closed
        );
        assert_eq!(
            classify(Err(Error::from_raw_os_error(libc::ENOSPC))),
            Outcome::Failed
        );
    }
}
