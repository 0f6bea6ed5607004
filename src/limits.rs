//! What this process and machine can hold, checked before a run starts.
//!
//! Every connected user holds one socket, and every user costs memory
//! whether it is connected or not. At start the soft open-files limit is
//! raised to the hard one (the default soft 1,024 is far below what a load
//! box allows), a run that cannot connect all its users gets a warning (it
//! still runs: the users that cannot connect back off and count `too many
//! open files`), and a run that cannot fit in memory or in the machine's
//! open-files table is refused with the numbers before anything starts.
//! This module owns those numbers; it does not own spawning (`engine`).

use std::fmt;

/// File descriptors a run needs besides its users' sockets: stdio, each
/// shard's ring and eventfds, the CSV files, the log, zmq's sockets.
pub fn reserved_files(shards: usize) -> u64 {
    64u64.saturating_add(8u64.saturating_mul(shards as u64))
}

/// Memory one user costs at least (RSS growth per user, debug build): a
/// raw user is its task, its connection and its stop signal (~2.4 KiB at
/// 100,000 users against a closed port); a Lua user adds a coroutine and
/// its tables (~5 KiB from 10,000 to 40,000 users idle in a sleep, ~11 KiB
/// once it has made a request). Rounded down, so a refusal is never wrong.
pub const RAW_USER_BYTES: u64 = 2 * 1024;
pub const LUA_USER_BYTES: u64 = 5 * 1024;
/// A run's fixed cost before any user: runtimes, stats tables, buffers.
pub const BASE_BYTES: u64 = 64 * 1024 * 1024;

/// The open-files limits, after [`raise_open_files`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit before raising it.
    pub was: u64,
    /// The soft limit now (the hard limit when raising worked).
    pub soft: u64,
    pub hard: u64,
}

/// Raise the soft RLIMIT_NOFILE to the hard limit. Failing leaves the
/// limit as it was (the run then warns from the lower number).
pub fn raise_open_files() -> std::io::Result<OpenFiles> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let was = lim.rlim_cur;
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            lim.rlim_cur = lim.rlim_max;
        }
        Ok(OpenFiles {
            was,
            soft: lim.rlim_cur,
            hard: lim.rlim_max,
        })
    }
}

/// The soft address-space limit, when there is one.
pub fn address_space_limit() -> Option<u64> {
    soft_limit(libc::RLIMIT_AS)
}

/// The soft open-files limit, as it is now (after [`raise_open_files`]).
pub fn open_files_limit() -> Option<u64> {
    soft_limit(libc::RLIMIT_NOFILE)
}

fn soft_limit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only fills the struct we pass.
    let ok = unsafe { libc::getrlimit(resource, &mut lim) } == 0;
    (ok && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// `MemAvailable` from /proc/meminfo, in bytes (None when unreadable).
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// The machine-wide open-files table size (/proc/sys/fs/file-max).
pub fn machine_files() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/file-max")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What the machine offers a run, read once at start.
#[derive(Clone, Copy, Debug, Default)]
pub struct Machine {
    pub open_files: Option<u64>,
    pub machine_files: Option<u64>,
    pub mem_available: Option<u64>,
    pub address_space: Option<u64>,
}

impl Machine {
    /// Read the limits (after raising the open-files one).
    pub fn read(open_files: Option<u64>) -> Machine {
        Machine {
            open_files,
            machine_files: machine_files(),
            mem_available: mem_available(),
            address_space: address_space_limit(),
        }
    }
}

/// A run that cannot fit on this machine, with the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TooLarge {
    Memory {
        users: u64,
        need: u64,
        per_user: u64,
        have: u64,
        what: &'static str,
    },
    Files {
        users: u64,
        machine: u64,
    },
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TooLarge::Memory {
                users,
                need,
                per_user,
                have,
                what,
            } => write!(
                f,
                "-u {} needs about {} of memory (at least {} per user), but {what} is {}; \
                 run fewer users per process or spread them over workers",
                thousands(users),
                bytes(need),
                bytes(per_user),
                bytes(have)
            ),
            TooLarge::Files { users, machine } => write!(
                f,
                "-u {} needs {} open files, but the whole machine allows {} \
                 (/proc/sys/fs/file-max); run fewer users per machine",
                thousands(users),
                thousands(users),
                thousands(machine)
            ),
        }
    }
}

/// Refuse a run whose users cannot fit in memory (MemAvailable, the
/// address-space limit) or in the machine's open-files table.
pub fn check_fits(users: u64, per_user: u64, shards: usize, m: &Machine) -> Result<(), TooLarge> {
    let need = users.saturating_mul(per_user).saturating_add(BASE_BYTES);
    let memory = [
        (m.mem_available, "MemAvailable"),
        (m.address_space, "the address-space limit (ulimit -v)"),
    ];
    for (have, what) in memory {
        if let Some(have) = have.filter(|&h| need > h) {
            return Err(TooLarge::Memory {
                users,
                need,
                per_user,
                have,
                what,
            });
        }
    }
    if let Some(machine) = m.machine_files {
        if users.saturating_add(reserved_files(shards)) > machine {
            return Err(TooLarge::Files { users, machine });
        }
    }
    Ok(())
}

/// The warning when the open-files limit cannot hold every user's socket.
pub fn open_files_warning(users: u64, shards: usize, limit: u64) -> Option<String> {
    let room = limit.saturating_sub(reserved_files(shards));
    (users > room).then(|| {
        format!(
            "open-files limit {} allows about {} connected users; -u {}: the others fail \
             as `too many open files` and retry (raise it with `ulimit -n`)",
            thousands(limit),
            thousands(room),
            thousands(users)
        )
    })
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes with a binary unit (`2.0 KiB`): the dashboard's formatter.
pub use locusta_tui::format::bytes;

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024 * 1024 * 1024;

    fn machine(mem: u64) -> Machine {
        Machine {
            open_files: Some(1024),
            machine_files: Some(2_000_000),
            mem_available: Some(mem),
            address_space: None,
        }
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(100_000_000), "100,000,000");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(bytes(3 * GIB / 2), "1.5 GiB");
    }

    #[test]
    fn meminfo_is_parsed_and_garbage_is_none() {
        let t = "MemTotal:  100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(parse_mem_available(t), Some(2048 * 1024));
        assert_eq!(parse_mem_available("MemAvailable: lots\n"), None);
        assert_eq!(parse_mem_available(""), None);
        assert_eq!(
            parse_mem_available("MemAvailable: 99999999999999999999 kB"),
            None
        );
    }

    #[test]
    fn runs_that_fit_pass_and_others_are_refused_with_numbers() {
        let m = machine(4 * GIB);
        assert_eq!(check_fits(100_000, RAW_USER_BYTES, 2, &m), Ok(()));
        let e = check_fits(100_000_000, RAW_USER_BYTES, 2, &m).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("-u 100,000,000") && msg.contains("MemAvailable"),
            "{msg}"
        );
        assert!(msg.contains("4.0 GiB"), "{msg}");
        // Memory fits, the machine's file table does not.
        let big = machine(u64::MAX);
        let e = check_fits(3_000_000, RAW_USER_BYTES, 2, &big).unwrap_err();
        assert!(
            matches!(
                e,
                TooLarge::Files {
                    machine: 2_000_000,
                    ..
                }
            ),
            "{e}"
        );
        // No overflow on absurd counts.
        assert!(check_fits(u64::MAX, u64::MAX, usize::MAX, &m).is_err());
    }

    #[test]
    fn address_space_limit_refuses_too() {
        let m = Machine {
            address_space: Some(GIB),
            ..machine(64 * GIB)
        };
        let e = check_fits(1_000_000, RAW_USER_BYTES, 2, &m).unwrap_err();
        assert!(e.to_string().contains("address-space"), "{e}");
    }

    #[test]
    fn open_files_warning_names_the_limit_and_users() {
        let w = open_files_warning(2000, 2, 1024).unwrap();
        assert!(
            w.contains("open-files limit 1,024 allows about 944 connected users; -u 2,000"),
            "{w}"
        );
        assert_eq!(open_files_warning(500, 2, 1024), None);
    }
}
