//! What the soak reads from `/proc`: a process's resident memory and open file descriptors, and
//! the machine's CPU model for the report. The parsers take the file text, so they are tested
//! without a process.

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, …), in KiB.
pub(crate) fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// `VmRSS` of `pid` in KiB; `None` when the process is gone.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kib(&status, "VmRSS")
}

/// The number of open file descriptors of `pid` (entries of `/proc/<pid>/fd`); `None` when the
/// process is gone.
pub(crate) fn open_fds(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(dir.count() as u64)
}

/// The CPU model from the text of `/proc/cpuinfo` (`model name`, or `Model` on some ARM boards).
pub(crate) fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        let key = key.trim();
        (key == "model name" || key == "Model").then(|| value.trim().to_owned())
    })
}

/// The 1-minute load average from the text of `/proc/loadavg`.
pub(crate) fn load_average(loadavg: &str) -> Option<f64> {
    loadavg.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_cpuinfo_fields() {
        let status = "Name:\tmesh-sidecar\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(10240));
        assert_eq!(status_kib(status, "VmSwap"), None);
        assert_eq!(
            cpu_model("processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\n").as_deref(),
            Some("Some CPU @ 2.0GHz")
        );
        assert_eq!(load_average("2.81 3.89 4.53 3/812 4242\n"), Some(2.81));
        assert_eq!(load_average(""), None);
    }

    #[test]
    fn this_process_has_memory_and_descriptors() {
        let me = std::process::id();
        assert!(rss_kib(me).is_some_and(|kib| kib > 0));
        // stdin, stdout and stderr at least.
        assert!(open_fds(me).is_some_and(|n| n >= 3));
    }
}
