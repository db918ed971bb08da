//! The target's memory, read from `/proc/<pid>/status`, and this process's open-file limit.

/// The `/proc/<pid>/status` of the target process.
#[derive(Clone)]
pub(crate) struct Rss {
    path: String,
    pid: u32,
}

impl Rss {
    /// The process `pid`, if it exists and reports a `VmRSS`.
    pub(crate) fn of(pid: u32) -> Result<Self, String> {
        let rss = Self {
            path: format!("/proc/{pid}/status"),
            pid,
        };
        rss.mib()?;
        Ok(rss)
    }

    /// Resident memory now, in MiB.
    pub(crate) fn mib(&self) -> Result<f64, String> {
        self.field("VmRSS")
    }

    /// The highest resident memory since the process started, in MiB.
    pub(crate) fn hwm_mib(&self) -> Result<f64, String> {
        self.field("VmHWM")
    }

    fn field(&self, key: &str) -> Result<f64, String> {
        let status = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("process {}: {e}", self.pid))?;
        status_kib(&status, key)
            .map(|kib| kib as f64 / 1024.0)
            .ok_or_else(|| format!("process {}: no {key} in {}", self.pid, self.path))
    }
}

/// A `kB` field of a `/proc/<pid>/status` text, in KiB.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// This process's soft open-file limit (`Max open files` in `/proc/self/limits`); 1 024 if
/// unreadable, `u64::MAX` if unlimited.
pub(crate) fn own_nofile_soft() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| nofile_soft(&limits))
        .unwrap_or(1_024)
}

fn nofile_soft(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    match line["Max open files".len()..].split_whitespace().next()? {
        "unlimited" => Some(u64::MAX),
        soft => soft.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_limits_fields() {
        let status = "Name:\tmesh-sidecar\nVmHWM:\t  204800 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(10_240));
        assert_eq!(status_kib(status, "VmHWM"), Some(204_800));
        assert_eq!(status_kib(status, "VmSwap"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            20000                20000                files\n";
        assert_eq!(nofile_soft(limits), Some(20_000));
        assert_eq!(nofile_soft("nothing"), None);
    }
}
