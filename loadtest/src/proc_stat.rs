//! A local server's memory and open files, and finding its pid from the port it listens on
//! (the socket's inode from the TCP tables, then the process holding it), through `procfs`.

use procfs::net::TcpState;
use procfs::process::{FDTarget, Process, all_processes};

/// Resident set size of `pid` in bytes (`VmRSS`), if readable.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = Process::new(i32::try_from(pid).ok()?).ok()?.status().ok()?;
    status.vmrss.map(|kb| kb * 1024)
}

/// Open file descriptors of `pid`, if readable.
pub fn open_fds(pid: u32) -> Option<u64> {
    let process = Process::new(i32::try_from(pid).ok()?).ok()?;
    process.fd_count().ok().map(|n| n as u64)
}

/// The pid of the process listening on TCP `port` on this machine, if one can be found.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let tables = [procfs::net::tcp(), procfs::net::tcp6()];
    let inodes: Vec<u64> = tables
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.state == TcpState::Listen && e.local_address.port() == port)
        .map(|e| e.inode)
        .collect();
    if inodes.is_empty() {
        return None;
    }
    all_processes().ok()?.flatten().find_map(|process| {
        let holds = process
            .fd()
            .ok()?
            .flatten()
            .any(|fd| matches!(fd.target, FDTarget::Socket(inode) if inodes.contains(&inode)));
        holds.then(|| u32::try_from(process.pid).ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_of_this_process() {
        let rss = rss_bytes(std::process::id());
        assert!(rss.is_some_and(|b| b > 100_000), "{rss:?}");
    }

    #[test]
    fn counts_open_files_of_this_process() {
        let file = std::fs::File::open("/proc/self/status");
        assert!(file.is_ok());
        assert!(open_fds(std::process::id()).is_some_and(|n| n >= 3));
        assert_eq!(rss_bytes(u32::MAX), None);
    }

    #[test]
    fn finds_the_pid_of_a_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0");
        let port = listener
            .as_ref()
            .ok()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port());
        assert!(port.is_some());
        assert_eq!(port.and_then(pid_listening_on), Some(std::process::id()));
    }
}
