//! Resource use of a process from `/proc`: resident memory and CPU time.
//!
//! The server's figures come from its PID; the bench reads its own too, because on a shared
//! machine a saturated load generator explains a plateau as well as a saturated server does.

use std::fs;
use std::io;
use std::sync::OnceLock;

/// One reading of a process's resource use.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// Resident set size (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// User plus system CPU time, seconds.
    pub cpu_secs: f64,
}

/// Reads the usage of process `pid`, or of this process when `pid` is `None`.
pub fn sample(pid: Option<u32>) -> io::Result<Usage> {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_owned(),
    };
    let status = fs::read_to_string(format!("{dir}/status"))?;
    let stat = fs::read_to_string(format!("{dir}/stat"))?;
    Ok(Usage {
        rss_kib: parse_vm_rss(&status).ok_or_else(|| bad("no VmRSS in status"))?,
        cpu_secs: parse_cpu_ticks(&stat).ok_or_else(|| bad("malformed stat"))? as f64
            / clock_ticks_per_sec(),
    })
}

/// Open file descriptors of process `pid` (entries of `/proc/PID/fd`; needs the same user).
pub fn open_fds(pid: u32) -> io::Result<u64> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// `VmRSS:     12345 kB` → 12345.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime (fields 14 and 15) in clock ticks. The command name (field 2) is in
/// parentheses and may hold spaces or parentheses itself, so fields are counted after the
/// last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")" come field 3 (state) onwards: utime is field 14, i.e. the 12th here.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_sec() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        // Linux has used 100 everywhere for decades; fall back to it if sysconf fails.
        if ticks > 0 { ticks as f64 } else { 100.0 }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tconfab\nVmPeak:\t  9000 kB\nVmRSS:\t   4242 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(4242));
    }

    #[test]
    fn cpu_ticks_survive_a_command_name_with_spaces_and_parens() {
        let stat = "123 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
    }

    #[test]
    fn a_process_descriptors_are_counted_and_a_gone_one_is_an_error() {
        // A child with stdin, stdout and stderr, plus whatever non-CLOEXEC descriptors the
        // test process inherited itself; spawn returns after its exec, so the count is settled.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sleep");
        let fds = open_fds(child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(fds.expect("/proc/PID/fd") >= 3);
        assert!(
            open_fds(child.id()).is_err(),
            "a reaped child has no /proc entry"
        );
    }

    #[test]
    fn own_usage_is_readable() {
        let usage = sample(None).expect("/proc/self");
        assert!(usage.rss_kib > 0);
    }
}
