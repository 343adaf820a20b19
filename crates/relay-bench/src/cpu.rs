//! CPU time of processes from `/proc/<pid>/stat` (proc(5): fields 14
//! `utime` and 15 `stime`, in clock ticks, summed over every thread of the
//! process), and the machine's load average from `/proc/loadavg`.

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

/// The one-minute load average.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
