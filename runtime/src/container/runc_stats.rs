//! The statistics of `events` laid out as runc 1.1.5's `types.Stats` (runc/types/events.go)
//! marshals them: its field order and key names, a zero field left out where the Go
//! struct says `omitempty` and kept where it does not, `cpuset` read from the v1 cpuset
//! cgroup, and the sections runc always writes (`hugetlb`, `intel_rdt`,
//! `network_interfaces: null`) written even when there is nothing in them. Clients decode
//! this with runc's structs (containerd's runc shim, go-runc's `Stats`); scripts compare it.

use std::collections::BTreeMap;
use std::path::Path;

use libcgroups::stats::{BlkioDeviceStat, MemoryData, Stats as CgroupStats};
use serde::Serialize;

fn zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize)]
pub struct Stats {
    cpu: Cpu,
    cpuset: CpuSet,
    memory: Memory,
    pids: Pids,
    blkio: Blkio,
    hugetlb: BTreeMap<String, Hugetlb>,
    intel_rdt: IntelRdt,
    network_interfaces: Option<Vec<()>>,
}

#[derive(Serialize)]
struct Cpu {
    usage: CpuUsage,
    throttling: Throttling,
}

#[derive(Serialize)]
struct CpuUsage {
    #[serde(skip_serializing_if = "zero")]
    total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    percpu_user: Vec<u64>,
    kernel: u64,
    user: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Throttling {
    #[serde(skip_serializing_if = "zero")]
    periods: u64,
    #[serde(skip_serializing_if = "zero")]
    throttled_periods: u64,
    #[serde(skip_serializing_if = "zero")]
    throttled_time: u64,
}

/// runc's `CPUSet`: the lists and flags of the cpuset cgroup (v1), zeros elsewhere.
#[derive(Serialize, Default)]
struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cpus: Vec<u16>,
    cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mems: Vec<u16>,
    mem_hardwall: u64,
    mem_exclusive: u64,
    memory_migrate: u64,
    memory_spread_page: u64,
    memory_spread_slab: u64,
    memory_pressure: u64,
    sched_load_balance: u64,
    sched_relax_domain_level: i64,
}

#[derive(Serialize)]
struct MemoryEntry {
    limit: u64,
    #[serde(skip_serializing_if = "zero")]
    usage: u64,
    #[serde(skip_serializing_if = "zero")]
    max: u64,
    failcnt: u64,
}

#[derive(Serialize)]
struct Memory {
    #[serde(skip_serializing_if = "zero")]
    cache: u64,
    usage: MemoryEntry,
    swap: MemoryEntry,
    kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    raw: BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct Pids {
    #[serde(skip_serializing_if = "zero")]
    current: u64,
    #[serde(skip_serializing_if = "zero")]
    limit: u64,
}

#[derive(Serialize)]
struct BlkioEntry {
    #[serde(skip_serializing_if = "zero")]
    major: u64,
    #[serde(skip_serializing_if = "zero")]
    minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    op: String,
    #[serde(skip_serializing_if = "zero")]
    value: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    io_queue_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    io_merged_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    io_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Serialize)]
struct Hugetlb {
    #[serde(skip_serializing_if = "zero")]
    usage: u64,
    #[serde(skip_serializing_if = "zero")]
    max: u64,
    failcnt: u64,
}

/// runc's `IntelRdt`: every field omitempty; this runtime reports no resctrl statistics.
#[derive(Serialize)]
struct IntelRdt {}

fn memory_entry(m: &MemoryData) -> MemoryEntry {
    MemoryEntry {
        limit: m.limit,
        usage: m.usage,
        max: m.max_usage,
        failcnt: m.fail_count,
    }
}

fn blkio_entries(list: &[BlkioDeviceStat]) -> Vec<BlkioEntry> {
    list.iter()
        .map(|e| BlkioEntry {
            major: e.major,
            minor: e.minor,
            op: e.op_type.clone().unwrap_or_default(),
            value: e.value,
        })
        .collect()
}

/// libcgroups' statistics, and the cpuset cgroup at `cgroup_path` (relative to each
/// hierarchy), in runc's layout.
pub fn from_cgroup(s: &CgroupStats, cgroup_path: &Path) -> Stats {
    Stats {
        cpu: Cpu {
            usage: CpuUsage {
                total: s.cpu.usage.usage_total,
                percpu: s.cpu.usage.per_core_usage_total.clone(),
                percpu_kernel: s.cpu.usage.per_core_usage_kernel.clone(),
                percpu_user: s.cpu.usage.per_core_usage_user.clone(),
                kernel: s.cpu.usage.usage_kernel,
                user: s.cpu.usage.usage_user,
            },
            throttling: Throttling {
                periods: s.cpu.throttling.periods,
                throttled_periods: s.cpu.throttling.throttled_periods,
                throttled_time: s.cpu.throttling.throttled_time,
            },
        },
        cpuset: cpuset_v1(cgroup_path),
        memory: Memory {
            cache: s.memory.cache,
            usage: memory_entry(&s.memory.memory),
            swap: memory_entry(&s.memory.memswap),
            kernel: memory_entry(&s.memory.kernel),
            kernel_tcp: memory_entry(&s.memory.kernel_tcp),
            raw: s
                .memory
                .stats
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        },
        pids: Pids {
            current: s.pids.current,
            limit: s.pids.limit,
        },
        blkio: Blkio {
            io_service_bytes_recursive: blkio_entries(&s.blkio.service_bytes),
            io_serviced_recursive: blkio_entries(&s.blkio.serviced),
            io_queue_recursive: blkio_entries(&s.blkio.queued),
            io_service_time_recursive: blkio_entries(&s.blkio.service_time),
            io_wait_time_recursive: blkio_entries(&s.blkio.wait_time),
            io_merged_recursive: blkio_entries(&s.blkio.merged),
            io_time_recursive: blkio_entries(&s.blkio.time),
            sectors_recursive: blkio_entries(&s.blkio.sectors),
        },
        hugetlb: s
            .hugetlb
            .iter()
            .map(|(size, h)| {
                let entry = Hugetlb {
                    usage: h.usage,
                    max: h.max_usage,
                    failcnt: h.fail_count,
                };
                (size.clone(), entry)
            })
            .collect(),
        intel_rdt: IntelRdt {},
        network_interfaces: None,
    }
}

/// The v1 cpuset cgroup's lists and flags as runc reads them; zeros where there is no v1
/// cpuset hierarchy or a file is missing (runc's struct keeps those fields at 0).
fn cpuset_v1(cgroup_path: &Path) -> CpuSet {
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    let dir = Path::new("/sys/fs/cgroup/cpuset").join(rel);
    let text = |name: &str| std::fs::read_to_string(dir.join(format!("cpuset.{name}"))).ok();
    let num = |name: &str| {
        text(name)
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    CpuSet {
        cpus: text("cpus").map(|t| parse_list(&t)).unwrap_or_default(),
        cpu_exclusive: num("cpu_exclusive"),
        mems: text("mems").map(|t| parse_list(&t)).unwrap_or_default(),
        mem_hardwall: num("mem_hardwall"),
        mem_exclusive: num("mem_exclusive"),
        memory_migrate: num("memory_migrate"),
        memory_spread_page: num("memory_spread_page"),
        memory_spread_slab: num("memory_spread_slab"),
        memory_pressure: num("memory_pressure"),
        sched_load_balance: num("sched_load_balance"),
        sched_relax_domain_level: text("sched_relax_domain_level")
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0),
    }
}

/// A kernel cpu or node list (`0-3,8,10-11`) as the numbers it names; a malformed part is
/// skipped.
fn parse_list(text: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u16>().ok()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_expand_ranges() {
        assert_eq!(parse_list("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_list("\n"), Vec::<u16>::new());
    }

    #[test]
    fn zero_fields_are_left_out_where_runc_omits_them() {
        let stats = from_cgroup(&CgroupStats::default(), Path::new("/no/such/cgroup"));
        let json = serde_json::to_string(&stats).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"cpu":{"usage":{"kernel":0,"user":0},"throttling":{}},"#,
                r#""cpuset":{"cpu_exclusive":0,"mem_hardwall":0,"mem_exclusive":0,"memory_migrate":0,"memory_spread_page":0,"memory_spread_slab":0,"memory_pressure":0,"sched_load_balance":0,"sched_relax_domain_level":0},"#,
                r#""memory":{"usage":{"limit":0,"failcnt":0},"swap":{"limit":0,"failcnt":0},"kernel":{"limit":0,"failcnt":0},"kernelTCP":{"limit":0,"failcnt":0}},"#,
                r#""pids":{},"blkio":{},"hugetlb":{},"intel_rdt":{},"network_interfaces":null}"#
            )
        );
    }
}
