//! runtime-spec `linux.resources` (each controller), `linux.cgroupsPath`, the device
//! cgroup (issue 12.1), memory.disableOOMKiller (13.5), and the cgroup behaviours of issue
//! 19 (frozen cgroup 19.3, unified on v1 and cgroup placement 19.4).

use std::path::PathBuf;

use serde_json::{json, Value};
use spec_tests::matrix::row::Setup;
use spec_tests::matrix::{cli, row, Class, Obs, Requires, Row};

const S: &str = "resources, cgroupsPath, devices";

/// A sleeping container with `resources` set, observed through `files` of its cgroup.
fn limit(name: &str, pointer: &str, v: Value, files: &[(&'static str, &'static str)]) -> Row {
    let mut r = row(S, format!("resources: {name}"))
        .set(&format!("/linux/resources/{pointer}"), v)
        .args(&["sleep", "100"])
        .daemon();
    for (ctrl, file) in files {
        r = r.observe(Obs::CgroupFile(ctrl, file));
    }
    r.requires(Requires::CgroupV1)
}

fn devices_row(name: &str, rules: Value) -> Row {
    row(S, format!("devices: {name}"))
        .set("/linux/resources/devices", rules)
        .args(&["sleep", "100"])
        .daemon()
        .observe(Obs::Devices)
        .requires(Requires::CgroupV1)
}

/// A v1 cgroup directory `name` made in every hierarchy listed; `name` is removed from
/// every hierarchy when the row ends.
fn host_cgroup(s: &mut Setup, name: &str, ctrls: &[&str]) -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for c in ctrls {
        let d = PathBuf::from("/sys/fs/cgroup").join(c).join(name);
        std::fs::create_dir_all(&d)?;
        dirs.push(d);
    }
    // The runtime may have made the same path in the other hierarchies (and a runtime that
    // hung in it may not have removed them): thawed and removed in every one.
    let name = name.to_string();
    s.cleanups.push(Box::new(move || {
        let _ = std::fs::write(
            PathBuf::from("/sys/fs/cgroup/freezer")
                .join(&name)
                .join("freezer.state"),
            "THAWED",
        );
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in hierarchies.flatten() {
                let _ = std::fs::remove_dir(h.path().join(&name));
            }
        }
    }));
    Ok(dirs)
}

pub fn rows() -> Vec<Row> {
    vec![
        limit("memory.limit 64M", "memory", json!({"limit": 64 << 20}), &[("memory", "memory.limit_in_bytes")]),
        limit("memory.reservation 32M", "memory", json!({"reservation": 32 << 20}), &[("memory", "memory.soft_limit_in_bytes")]),
        limit("memory.swappiness 10", "memory", json!({"swappiness": 10}), &[("memory", "memory.swappiness")]),
        limit("memory.disableOOMKiller (13.5)", "memory", json!({"limit": 64 << 20, "disableOOMKiller": true}), &[("memory", "memory.oom_control")]),
        limit("memory.limit -1 (unlimited)", "memory", json!({"limit": -1}), &[("memory", "memory.limit_in_bytes")]),
        row(S, "resources: memory.swap below limit is refused")
            .set("/linux/resources/memory", json!({"limit": 64 << 20, "swap": 32 << 20}))
            .args(&["true"])
            .run()
            .requires(Requires::CgroupV1),
        limit("cpu.shares 512", "cpu", json!({"shares": 512}), &[("cpu", "cpu.shares")]),
        limit("cpu.quota/period", "cpu", json!({"quota": 20000, "period": 100000}), &[("cpu", "cpu.cfs_quota_us"), ("cpu", "cpu.cfs_period_us")]),
        limit("cpu.cpus 0", "cpu", json!({"cpus": "0"}), &[("cpuset", "cpuset.cpus")]),
        limit("cpu.mems 0", "cpu", json!({"mems": "0"}), &[("cpuset", "cpuset.mems")]),
        limit("cpu.realtimeRuntime (no RT budget on this host)", "cpu", json!({"realtimeRuntime": 1000, "realtimePeriod": 1000000}), &[("cpu", "cpu.rt_runtime_us")]),
        limit("pids.limit 50", "pids", json!({"limit": 50}), &[("pids", "pids.max")]),
        limit("pids.limit 0 (unlimited)", "pids", json!({"limit": 0}), &[("pids", "pids.max")]),
        limit("blockIO.weight", "blockIO", json!({"weight": 500}), &[("blkio", "blkio.weight")]),
        limit("blockIO.throttleReadBpsDevice", "blockIO", json!({"throttleReadBpsDevice": [{"major": 1, "minor": 3, "rate": 1048576}]}), &[("blkio", "blkio.throttle.read_bps_device")]),
        limit("hugepageLimits (no hugetlb hierarchy here)", "hugepageLimits", json!([{"pageSize": "2MB", "limit": 4194304}]), &[("hugetlb", "hugetlb.2MB.limit_in_bytes")]),
        limit("network.classID (no net_cls hierarchy here)", "network", json!({"classID": 1048577}), &[("net_cls", "net_cls.classid")]),
        row(S, "resources: a process over pids.limit cannot fork")
            .set("/linux/resources/pids", json!({"limit": 2}))
            .sh("sleep 1 & sleep 1 & sleep 1 & wait; echo done")
            .step(cli(&["run", "{id}"]).err(Class::Empty))
            .requires(Requires::CgroupV1),
        row(S, "resources.unified on a cgroup v1 host is refused (19.4)")
            .set("/linux/resources/unified", json!({"memory.max": "67108864"}))
            .args(&["true"])
            .run_err("invalid configuration")
            .requires(Requires::CgroupV1),
        row(S, "resources.unified on cgroup v2 is written")
            .set("/linux/resources/unified", json!({"memory.max": "67108864", "pids.max": "42"}))
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::CgroupFile("", "memory.max"))
            .observe(Obs::CgroupFile("", "pids.max"))
            .requires(Requires::CgroupV2),
        row(S, "resources: memory.max and pids.max on cgroup v2")
            .set("/linux/resources/memory", json!({"limit": 64 << 20}))
            .set("/linux/resources/pids", json!({"limit": 42}))
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::CgroupFile("", "memory.max"))
            .observe(Obs::CgroupFile("", "pids.max"))
            .requires(Requires::CgroupV2),
        // devices (cgroup v1 devices.list)
        devices_row("the default deny-all rule", json!([{"allow": false, "access": "rwm"}])),
        devices_row("an empty list still starts from deny-all (12.1)", json!([])),
        devices_row("allow c 1:3 rw", json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}])),
        devices_row("allow all c *:* m", json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "access": "m"}])),
        devices_row("allow everything", json!([{"allow": true, "access": "rwm"}])),
        devices_row("deny a default device (c 1:5)", json!([{"allow": false, "access": "rwm"}, {"allow": false, "type": "c", "major": 1, "minor": 5, "access": "rwm"}])),
        row(S, "devices: linux.devices creates the node and allows it")
            .push("/linux/devices", json!({"path": "/dev/fuse-like", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600, "uid": 0, "gid": 0}))
            .sh("ls -ln /dev/fuse-like | cut -d' ' -f1,5-7")
            .run(),
        row(S, "devices: the default /dev nodes")
            .sh("ls -ln /dev | grep -v '^total' | awk '{print $1, $5, $6, $NF}'")
            .run(),
        row(S, "devices: a host device node cannot be opened by default (12.1)")
            .set("/linux/resources/devices", json!([]))
            .set("/process/capabilities/bounding", json!(["CAP_MKNOD"]))
            .set("/process/capabilities/effective", json!(["CAP_MKNOD"]))
            .set("/process/capabilities/permitted", json!(["CAP_MKNOD"]))
            .set("/root/readonly", json!(false))
            .sh("mknod /tmp/fuse c 10 229 && ( (exec 3<>/tmp/fuse) 2>/dev/null && echo opened || echo refused)")
            .run(),
        // cgroupsPath and placement
        row(S, "cgroupsPath: unset: where the container's cgroup is (19.4)")
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::CgroupPath("memory"))
            .observe(Obs::CgroupPath("pids"))
            .requires(Requires::CgroupV1)
            .by_design(super::mounts::V1_PLACEMENT),
        row(S, "cgroupsPath: the name=systemd and v2 hierarchies are joined too (19.4)")
            .set("/linux/cgroupsPath", json!("/mx-matrix/{id}"))
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::CgroupPath("name=systemd"))
            .observe(Obs::CgroupPath(""))
            .requires(Requires::CgroupV1),
        row(S, "cgroupsPath: absolute")
            .set("/linux/cgroupsPath", json!("/mx-matrix/{id}"))
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::CgroupPath("memory"))
            .observe(Obs::CgroupPath("cpu"))
            .requires(Requires::CgroupV1),
        row(S, "cgroupsPath: relative")
            .set("/linux/cgroupsPath", json!("mx-matrix-rel/{id}"))
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::CgroupPath("cpu"))
            .requires(Requires::CgroupV1),
        row(S, "cgroupsPath: systemd slice:prefix:name without --systemd-cgroup")
            .set("/linux/cgroupsPath", json!("system.slice:mx:{id}"))
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::CgroupPath("cpu"))
            .requires(Requires::CgroupV1),
        row(S, "cgroupsPath: an existing non-empty cgroup warns (19.4)")
            .with(|s| {
                // runc looks at the devices hierarchy only (v1).
                let dirs = host_cgroup(s, &format!("mx-busy-{}", s.id), &["devices", "pids"])?;
                let mut child = std::process::Command::new("sleep").arg("1000").spawn()?;
                for d in &dirs {
                    std::fs::write(d.join("cgroup.procs"), child.id().to_string())?;
                }
                s.cleanups.insert(0, Box::new(move || {
                    let _ = child.kill();
                    let _ = child.wait();
                }));
                let path = format!("/mx-busy-{}", s.id);
                s.bundle.set("/linux/cgroupsPath", json!(path));
                Ok(())
            })
            .args(&["sleep", "100"])
            .step(cli(&["create", "{id}"]).err(Class::Phrase("container's cgroup is not empty")))
            .requires(Requires::CgroupV1),
        row(S, "cgroupsPath: a pre-existing frozen cgroup is refused (19.3)")
            .with(|s| {
                let dirs = host_cgroup(s, &format!("mx-frozen-{}", s.id), &["freezer"])?;
                std::fs::write(dirs[0].join("freezer.state"), "FROZEN")?;
                let path = format!("/mx-frozen-{}", s.id);
                s.bundle.set("/linux/cgroupsPath", json!(path));
                Ok(())
            })
            .args(&["sleep", "100"])
            .step(cli(&["run", "-d", "{id}"]).timeout(10))
            .host("thaw", |c| {
                let d = PathBuf::from("/sys/fs/cgroup/freezer").join(format!("mx-frozen-{}", c.id));
                std::fs::write(d.join("freezer.state"), "THAWED")?;
                Ok(String::new())
            })
            .requires(Requires::CgroupV1),
        row(S, "cgroup removed after delete")
            .set("/linux/cgroupsPath", json!("/mx-matrix/{id}"))
            .args(&["sleep", "100"])
            .daemon()
            .cli(&["delete", "-f", "{id}"])
            .observe(Obs::Leftovers),
        row(S, "cgroup of a stopped container removed by delete")
            .args(&["true"])
            .create()
            .start()
            .wait("stopped")
            .cli(&["delete", "{id}"])
            .observe(Obs::Leftovers),
    ]
}
