//! Raising the open-files limit: every client is a socket, and the default soft limit (often
//! 1,024) is far below the connection counts the scenarios need.

use anyhow::{Context, bail};

/// Raises RLIMIT_NOFILE's soft limit to its hard limit and returns the new soft limit.
///
/// The hard limit is left alone: raising it needs privileges, and on the reference machine it
/// is fixed at 20,000. A spawned server inherits the raised limit.
pub fn raise_nofile() -> anyhow::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit only reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error()).context("setrlimit(RLIMIT_NOFILE)");
        }
    }
    if limit.rlim_cur == 0 {
        bail!("RLIMIT_NOFILE is 0");
    }
    Ok(limit.rlim_cur)
}
