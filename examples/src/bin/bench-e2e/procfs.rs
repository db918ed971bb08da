//! Reading `/proc`: CPU time and memory of a process and its descendants, thread counts, and the
//! open-file limit. The parsers are plain functions over the file text so they are unit-tested
//! without any process.

use mesh_examples::children::process_tree;

/// User + system CPU time of one process, in clock ticks, from the text of `/proc/<pid>/stat`.
///
/// The command name (field 2) is in parentheses and may itself contain spaces or parentheses, so
/// the fields are counted from the *last* `)`: after it come state (field 3), ppid (4), …,
/// utime (14) and stime (15).
pub(crate) fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let fields = fields_after_comm(stat)?;
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

fn fields_after_comm(stat: &str) -> Option<Vec<&str>> {
    let end = stat.rfind(')')?;
    Some(stat[end + 1..].split_whitespace().collect())
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, …), in KiB.
pub(crate) fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Sum of user + system CPU time of `pid`'s tree, in clock ticks.
pub(crate) fn tree_cpu_ticks(pid: u32) -> u64 {
    process_tree(pid)
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| stat_cpu_ticks(&s))
        .sum()
}

/// Sum of a `kB` status field over `pid`'s tree, in KiB.
pub(crate) fn tree_status_kib(pid: u32, key: &str) -> u64 {
    process_tree(pid)
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| status_kib(&s, key))
        .sum()
}

/// The names of `pid`'s threads (`/proc/<pid>/task/*/comm`), sorted.
pub(crate) fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|s| s.trim().to_owned())
        .collect();
    names.sort();
    names
}

/// Groups equal names: `["a", "a", "b"]` → `"2 × a, 1 × b"`.
pub(crate) fn summarize_names(names: &[String]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for name in names {
        match counts.iter_mut().find(|(n, _)| n == name) {
            Some((_, c)) => *c += 1,
            None => counts.push((name.clone(), 1)),
        }
    }
    counts
        .iter()
        .map(|(n, c)| format!("{c} × {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The soft and hard `Max open files` limits from the text of `/proc/<pid>/limits`
/// (`unlimited` reads as `u64::MAX`).
pub(crate) fn limits_nofile(limits: &str) -> Option<(u64, u64)> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..].split_whitespace().map(|v| {
        if v == "unlimited" {
            Some(u64::MAX)
        } else {
            v.parse().ok()
        }
    });
    Some((values.next()??, values.next()??))
}

/// This process's open-file limits (soft, hard); (1024, 1024) if unreadable.
pub(crate) fn own_nofile() -> (u64, u64) {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| limits_nofile(&l))
        .unwrap_or((1024, 1024))
}

/// The CPU model from the text of `/proc/cpuinfo` (`model name`, or `Model` on some ARM boards).
pub(crate) fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        let key = key.trim();
        (key == "model name" || key == "Model").then(|| value.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (nginx: worker (x)) S 4241 4241 4241 0 -1 4194624 1234 0 0 0 \
                        150 37 0 0 20 0 1 0 987654 12345678 2345 18446744073709551615";

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        assert_eq!(stat_cpu_ticks(STAT), Some(187));
        assert_eq!(stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_fields_in_kib() {
        let status = "Name:\thaproxy\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(20480));
        assert_eq!(status_kib(status, "VmRSS"), Some(10240));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn limits_and_cpuinfo() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(limits_nofile(limits), Some((1024, 524288)));
        assert_eq!(
            cpu_model("processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\n").as_deref(),
            Some("Some CPU @ 2.0GHz")
        );
        let names = ["b".to_owned(), "a".to_owned(), "b".to_owned()];
        assert_eq!(summarize_names(&names), "2 × b, 1 × a");
    }
}
