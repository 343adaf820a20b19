//! CPU time of processes from `/proc/<pid>/stat` (proc(5): fields 14
//! `utime` and 15 `stime`, in clock ticks, summed over every thread of the
//! process), its context switches from `/proc/<pid>/task/*/status`, and the
//! machine's load average from `/proc/loadavg`.

use std::time::Duration;

/// Clock ticks per second of `/proc` times (`USER_HZ`, 100 on every Linux
/// architecture the gateway runs on).
const TICKS_PER_SECOND: u64 = 100;

/// The parent process id and the CPU time (user + system) of `pid`, or
/// `None` when it is gone.
fn stat(pid: u32) -> Option<(u32, Duration)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): field n is fields[n - 3].
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = utime + stime;
    Some((ppid, Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)))
}

/// CPU time used so far by `pid` (all its threads).
pub(crate) fn process(pid: u32) -> Duration {
    stat(pid).map(|(_, t)| t).unwrap_or_default()
}

/// CPU time used so far by `pid` and its living children (nginx's master
/// and its workers).
pub(crate) fn process_and_children(pid: u32) -> Duration {
    let mut total = process(pid);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((ppid, time)) = stat(child)
                && ppid == pid
            {
                total += time;
            }
        }
    }
    total
}

/// Context switches so far of `pid`'s living threads (proc(5):
/// `voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches` of each task): a
/// count, unlike CPU time not inflated by what a virtual machine's host
/// takes, and what every hand-off between threads costs (a thread that
/// waits is switched out, its wake-up switches it in).
pub(crate) fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
        .map(|status| {
            status
                .lines()
                .filter_map(|line| {
                    line.strip_prefix("voluntary_ctxt_switches:")
                        .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                })
                .filter_map(|count| count.trim().parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// The one-minute load average.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
