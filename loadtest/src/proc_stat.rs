//! A local server's memory, from `/proc/<pid>/status`, and finding that pid from the port it
//! listens on (`/proc/net/tcp{,6}` gives the socket inode, `/proc/*/fd` who holds it).

use std::path::Path;

/// Resident set size of `pid` in bytes (`VmRSS`), if readable.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field_kb(&status, "VmRSS:").map(|kb| kb * 1024)
}

/// Open file descriptors of `pid`, if readable.
pub fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

fn status_field_kb(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The pid of the process listening on TCP `port` on this machine, if one can be found.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let targets: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if holds_any(&entry.path().join("fd"), &targets) {
            return Some(pid);
        }
    }
    None
}

fn holds_any(fd_dir: &Path, targets: &[String]) -> bool {
    let Ok(fds) = std::fs::read_dir(fd_dir) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|link| link.to_str().map(|l| targets.iter().any(|t| t == l)))
            .unwrap_or(false)
    })
}

/// Inodes of sockets in LISTEN state (`0A`) on `port` in a `/proc/net/tcp` table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    let want = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local = cols.get(1)?;
            let state = cols.get(3)?;
            (local.ends_with(&want) && *state == "0A")
                .then(|| cols.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
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
    fn parses_listening_sockets() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 8080), vec![4242]);
        assert!(listening_inodes(table, 8081).is_empty());
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
