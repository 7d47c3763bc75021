//! `events`: container statistics and OOM notifications in runc's envelope
//! `{"type":"stats"|"oom","id":...,"data":{...}}`, the shape containerd's shim decodes.
//! `--stats` prints one stats event; otherwise stats stream every `--interval` and an
//! `oom` event is printed whenever the kernel OOM-kills a process in the container, until
//! the container is deleted (exit 0).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use libcgroups::common::{create_cgroup_manager, AnyCgroupManager, CgroupConfig, CgroupManager};
use libcontainer::config::YoukiConfig;
use libcontainer::container::ContainerStatus;

use crate::cli::Cli;
use crate::container;
use crate::container::runc_stats::{self, Stats as RuncStats};

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Print one stats event and exit.
    #[arg(long)]
    pub stats: bool,
    /// Interval between stats events when streaming (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// The container id.
    pub id: String,
}

/// Parses Go-style durations as runc takes them: "5s", "500ms", "1m", "2".
fn parse_interval(text: &str) -> Result<Duration> {
    let t = text.trim();
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((t, "s"), |i| (&t[..i], &t[i..]));
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid --interval {text:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid --interval {text:?}: unit must be ms, s, m or h"),
    };
    if secs <= 0.0 {
        bail!("--interval must be positive");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The OOM-kill counter of the container's memory cgroup (v1 memory.oom_control or v2
/// memory.events), if the kernel exposes one.
fn oom_kills(memory_dir: &Path) -> Option<u64> {
    ["memory.oom_control", "memory.events"]
        .iter()
        .find_map(|f| {
            std::fs::read_to_string(memory_dir.join(f))
                .ok()?
                .lines()
                .find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|v| v.trim().parse().ok())
                })
        })
}

/// The container's memory cgroup directory under v1 or v2. On v2 it is the init's cgroup,
/// read from /proc: with the systemd driver the recorded cgroup path is a
/// `slice:prefix:name` triple, not a directory.
fn memory_dir(cgroup_path: &Path, init: Option<i32>) -> PathBuf {
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    let v1 = Path::new("/sys/fs/cgroup/memory").join(rel);
    if v1.exists() {
        return v1;
    }
    let init_v2 = init.and_then(|pid| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
        Some(Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/')))
    });
    init_v2
        .filter(|d| d.join("memory.events").exists())
        .unwrap_or_else(|| Path::new("/sys/fs/cgroup").join(rel))
}

/// runc's event envelope, its keys in runc's order (`type`, `id`, `data`): scripts and
/// runc's own tests compare the text.
#[derive(serde::Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<RuncStats>,
}

fn print_event(kind: &str, id: &str, data: Option<RuncStats>) -> Result<()> {
    let event = serde_json::to_string(&Event { kind, id, data })?;
    crate::output::outln!("{event}");
    Ok(())
}

fn stats_of(manager: &AnyCgroupManager, cgroup_path: &Path, id: &str) -> Result<RuncStats> {
    let stats = manager
        .stats()
        .with_context(|| format!("cannot read the statistics of container {id}"))?;
    Ok(runc_stats::from_cgroup(&stats, cgroup_path))
}

pub fn run(cli: &Cli, args: EventsArgs) -> Result<()> {
    let interval = parse_interval(&args.interval)?;
    let root = container::state_root(cli);
    let c = container::load(&root, &args.id)?;
    if c.status() == ContainerStatus::Stopped {
        // runc's wording for events.
        bail!("container with id {} is not running", args.id);
    }
    let config = YoukiConfig::load(&c.root)
        .with_context(|| format!("cannot read the saved config of container {}", args.id))?;
    let manager = create_cgroup_manager(CgroupConfig {
        cgroup_path: config.cgroup_path.clone(),
        systemd_cgroup: c.systemd(),
        container_name: args.id.clone(),
    })
    .with_context(|| format!("cannot open the cgroup of container {}", args.id))?;
    if args.stats {
        print_event(
            "stats",
            &args.id,
            Some(stats_of(&manager, &config.cgroup_path, &args.id)?),
        )?;
        return Ok(());
    }
    let mem = memory_dir(&config.cgroup_path, c.pid().map(|p| p.as_raw()));
    let mut ooms = oom_kills(&mem).unwrap_or(0);
    let mut next_stats = Instant::now();
    loop {
        if let Some(n) = oom_kills(&mem) {
            if n > ooms {
                print_event("oom", &args.id, None)?;
                ooms = n;
            }
        }
        if Instant::now() >= next_stats {
            match stats_of(&manager, &config.cgroup_path, &args.id) {
                Ok(data) => print_event("stats", &args.id, Some(data))?,
                Err(_) if container::load(&root, &args.id).is_err() => return Ok(()),
                // runc logs a failed read and keeps streaming (a delete may be under way).
                Err(e) => crate::logging::log(crate::logging::Level::Error, &format!("{e:#}")),
            }
            next_stats = Instant::now() + interval;
        }
        // Streaming ends, successfully, when the container is deleted (its cgroup goes):
        // as runc's, a stopped container's stream goes on until then.
        if container::load(&root, &args.id).is_err() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100).min(interval));
    }
}

#[cfg(test)]
mod tests {
    use super::parse_interval;
    use std::time::Duration;

    #[test]
    fn go_durations() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_interval("2").unwrap(), Duration::from_secs(2));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("5x").is_err());
    }
}
