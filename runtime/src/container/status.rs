//! The status `state` reports must be the truth. libcontainer records `stopped` as soon as a
//! signal is sent, and keeps `created`/`running` for an init that has become a zombie or
//! vanished; here the status is derived from the init process itself.

use anyhow::Result;
use libcontainer::container::{Container, ContainerStatus};

/// Re-derives the status from the init process: alive and not a zombie means the
/// recorded `created`/`paused` still hold and anything else is `running`; dead, zombie or
/// reused by an unrelated process means `stopped`.
pub fn refresh(container: &mut Container) -> Result<()> {
    let truth = match container.pid() {
        None => ContainerStatus::Stopped,
        Some(pid) => match read_proc_stat(pid.as_raw()) {
            Some((state, start))
                if state != 'Z' && state != 'X' && same_process(container, start) =>
            {
                match container.status() {
                    s @ (ContainerStatus::Created
                    | ContainerStatus::Paused
                    | ContainerStatus::Creating) => s,
                    _ => ContainerStatus::Running,
                }
            }
            _ => ContainerStatus::Stopped,
        },
    };
    if truth != container.status() {
        container.set_status(truth);
    }
    Ok(())
}

/// Process state letter and start time (clock ticks since boot) from /proc/PID/stat.
fn read_proc_stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // starttime is field 22 overall; after the name, state is field 3, so skip 18 more.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Guards against pid reuse: the init must have started no later than the container was
/// created (a process started after that holding the same pid is someone else's).
fn same_process(container: &Container, start_ticks: u64) -> bool {
    let Some(created) = container.created() else {
        return true;
    };
    let Some(boot) = boot_time() else {
        return true;
    };
    // SAFETY: sysconf has no memory effects; it only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return true;
    }
    let started = boot + (start_ticks as i64) / hz as i64;
    // created is recorded after the init is forked; allow a second of clock granularity.
    started <= created.timestamp() + 1
}

fn boot_time() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}
