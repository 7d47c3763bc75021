//! `imgtool bundle --network none|host|bridge[:NAME]` and `-p`, driven as a user would:
//! bundles of a busybox image, run by the runtime under test (and by containerd), with
//! traffic only between the host's loopback and the test's own containers on the test's
//! own bridge network (`spec_tests::network::TestNetwork`, never the default one).
//! Every test checks that what a container attached to the network is gone once it has
//! ended, whichever way it ended. (The security defaults are in imgtool_security.rs.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use spec_tests::bins;
use spec_tests::busybox_bundles::{sh, BusyboxBundles, IMAGE};
use spec_tests::container::Runtime;
use spec_tests::network::TestNetwork;
use spec_tests::registry::free_port;
const BODY: &str = "hello from the container";

/// busybox httpd serving BODY on port 80.
fn httpd() -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("mkdir -p /www && echo '{BODY}' > /www/index.html && exec httpd -f -p 80 -h /www"),
    ]
}

/// busybox bundles, the test's own network, a runtime.
struct Env {
    bundles: BusyboxBundles,
    net: TestNetwork,
    rt: Runtime,
}

impl Env {
    fn new() -> Self {
        Self {
            bundles: BusyboxBundles::new(),
            net: TestNetwork::new(),
            rt: Runtime::new(),
        }
    }

    /// A bundle of `cmd` on this test's network unless `opts` name another.
    fn bundle(&self, name: &str, opts: &[&str], cmd: &[String]) -> PathBuf {
        let mut all = Vec::new();
        if !opts.iter().any(|o| o.starts_with("--network")) {
            all.extend(self.net.bundle_args());
        }
        all.extend(opts.iter().map(|s| s.to_string()));
        self.bundles.bundle(name, &all, cmd)
    }

    fn run_detached(&self, bundle: &Path, id: &str) {
        self.rt
            .exec(&["run", "-d", "--bundle", &bundle.to_string_lossy(), id])
            .ok();
    }

    fn assert_nothing_left(&self, after: &str) {
        let left = self.net.leftovers();
        assert!(
            left.is_empty(),
            "after {after}, still on the host: {left:#?}"
        );
    }
}

/// `curl` from the host; the body, or None when nothing answered.
fn curl(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "2", url])
        .output()
        .expect("curl (hack/install-deps.sh installs it)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls `url` until it answers or 15 s pass.
fn wait_for_http(url: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(body) = curl(url) {
            return Some(body);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The container's address, from the hosts file the hook wrote in its bundle.
fn address_of(bundle: &Path) -> String {
    let hosts = std::fs::read_to_string(bundle.join("hosts")).unwrap();
    let last = hosts.lines().last().unwrap_or_default();
    let ip = last.split_whitespace().next().unwrap_or_default();
    assert!(
        ip.starts_with("10.231."),
        "the hook wrote the address: {hosts}"
    );
    ip.to_string()
}

#[test]
fn a_published_port_serves_busybox_httpd_to_the_host_loopback() {
    let env = Env::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    // Negative control: nothing answers there before the container runs.
    assert_eq!(curl(&url), None, "port {port} is free");
    let b = env.bundle("web", &["-p", &format!("127.0.0.1:{port}:80")], &httpd());
    let g = env.rt.guard("web");
    env.run_detached(&b, g.id());
    assert_eq!(
        wait_for_http(&url).as_deref().map(str::trim),
        Some(BODY),
        "curl {url}"
    );
    env.rt.exec(&["delete", "-f", g.id()]).ok();
    env.assert_nothing_left("delete -f");
    assert_eq!(curl(&url), None, "the port is closed with the container");
}

#[test]
fn two_containers_on_the_bridge_reach_each_other_by_address() {
    let env = Env::new();
    let server = env.bundle("server", &[], &httpd());
    let gs = env.rt.guard("server");
    env.run_detached(&server, gs.id());
    let ip = address_of(&server);
    // busybox-static's wget crashes (Debian 12), so plain HTTP over nc; retried until
    // the server listens (a readiness wait, 10 s at most).
    let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 80");
    let fetch = sh(&format!(
        "for i in $(seq 100); do out=$({get}) && [ -n \"$out\" ] && echo \"$out\" && exit 0; sleep 0.1; done; exit 1"
    ));
    let client = env.bundle("client", &[], &fetch);
    let gc = env.rt.guard("client");
    let out = env.rt.run(&client, gc.id());
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("200 OK") && out.stdout.contains(BODY),
        "{out:?}"
    );
    // Negative control: from --network none the same request cannot get there.
    let isolated = env.bundle("isolated", &["--network", "none"], &sh(&get));
    let gi = env.rt.guard("isolated");
    let out = env.rt.run(&isolated, gi.id());
    assert!(!out.stdout.contains(BODY), "{out:?}");
    env.rt.exec(&["delete", "-f", gs.id()]).ok();
    env.assert_nothing_left("the server's delete -f");
}

/// The interfaces a container sees: `name flags` per line.
fn links(env: &Env, name: &str, opts: &[&str]) -> Vec<String> {
    let b = env.bundle(
        name,
        opts,
        &sh("ip -o link | sed 's/^[0-9]*: \\([^:@]*\\)[^<]*<\\([^>]*\\)>.*/\\1 \\2/'"),
    );
    let g = env.rt.guard(name);
    let out = env.rt.run(&b, g.id()).ok();
    out.stdout.lines().map(str::to_string).collect()
}

/// lo being down in `none` is a runtime bug (runc and crun bring lo up); this test
/// passes once the runtime brings it up.
#[test]
fn network_none_has_only_loopback_and_it_is_up() {
    let env = Env::new();
    let none = links(&env, "none", &["--network", "none"]);
    assert_eq!(none.len(), 1, "only lo: {none:?}");
    let (name, flags) = none[0].split_once(' ').unwrap();
    assert_eq!(name, "lo");
    assert!(flags.split(',').any(|f| f == "UP"), "lo is up: {none:?}");
    // Negative control: the listing does show a second interface when there is one.
    let bridged = links(&env, "bridged", &[]);
    assert!(
        bridged.iter().any(|l| l.starts_with("eth0 ")),
        "{bridged:?}"
    );
}

#[test]
fn network_host_is_the_hosts_network_namespace() {
    let env = Env::new();
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let script = "readlink /proc/self/ns/net; hostname; echo $HOSTNAME; cat /sys/class/net/lo/ifindex; ls /sys/class/net";
    let b = env.bundle("host", &["--network", "host"], &sh(script));
    let g = env.rt.guard("host");
    let out = env.rt.run(&b, g.id()).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], host_ns.to_string_lossy(), "{out:?}");
    assert_eq!(
        lines[1],
        host_name.trim(),
        "the host's hostname, as docker gives"
    );
    assert_eq!(lines[2], host_name.trim());
    // The host's interfaces: the one of its default route is there, and every one listed
    // exists on the host (other tests' veths may come and go meanwhile).
    let routes = std::fs::read_to_string("/proc/net/route").unwrap();
    let default_dev = routes
        .lines()
        .skip(1)
        .find(|l| l.split_whitespace().nth(1) == Some("00000000"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the host has a default route");
    assert!(
        lines[4..].contains(&default_dev),
        "{default_dev} in {out:?}"
    );
    for ifname in &lines[4..] {
        assert!(
            Path::new("/sys/class/net").join(ifname).exists() || ifname.starts_with("veth"),
            "{ifname} is a host interface"
        );
    }
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    assert!(
        cfg["hooks"].is_null(),
        "no network hooks on the host network"
    );
    // Negative control: a none container is in another namespace.
    let n = env.bundle(
        "none",
        &["--network", "none"],
        &sh("readlink /proc/self/ns/net"),
    );
    let gn = env.rt.guard("none");
    let out = env.rt.run(&n, gn.id()).ok();
    assert_ne!(out.stdout.trim(), host_ns.to_string_lossy());
}

#[test]
fn the_container_files_are_docker_s() {
    let env = Env::new();
    let script = "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; cat /etc/hostname; echo $HOSTNAME; hostname";
    let b = env.bundle(
        "files",
        &[
            "--hostname",
            "web1",
            "--add-host",
            "db:10.9.8.7",
            "--dns",
            "192.0.2.53",
        ],
        &sh(script),
    );
    let g = env.rt.guard("files");
    let out = env.rt.run(&b, g.id()).ok();
    let parts: Vec<&str> = out.stdout.split("---\n").collect();
    let hosts = parts[0];
    assert!(
        hosts.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
        "{hosts}"
    );
    assert!(hosts.contains("10.9.8.7\tdb\n"), "{hosts}");
    let own = hosts.lines().last().unwrap();
    assert!(
        own.starts_with(&format!("{}.", env.net.prefix)) && own.ends_with("\tweb1"),
        "{hosts}"
    );
    assert!(
        parts[1]
            .lines()
            .filter(|l| l.starts_with("nameserver"))
            .eq(["nameserver 192.0.2.53"]),
        "{}",
        parts[1]
    );
    assert_eq!(parts[2], "web1\nweb1\nweb1\n");
    // The files are the bundle's, bind-mounted: what the container sees is what is there.
    assert_eq!(
        std::fs::read_to_string(b.join("hostname")).unwrap(),
        "web1\n"
    );
    // docker keeps them out of commits: the bundle's record lists them.
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("imgtool.json")).unwrap()).unwrap();
    assert_eq!(
        marker["generated"],
        serde_json::json!(["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"])
    );
}

#[test]
fn bad_network_options_are_one_line_errors_that_leave_nothing() {
    let env = Env::new();
    for (opts, want) in [
        (
            vec!["--network", "none", "-p", "8080:80"],
            "-p needs a bridge network",
        ),
        (
            vec!["--network", "host", "-p", "8080:80"],
            "-p needs a bridge network",
        ),
        (vec!["--network", "bridge:nope"], "no network \"nope\""),
        (vec!["--network", "weird"], "--network \"weird\""),
        (vec!["-p", "80"], "give the host port"),
        (vec!["--add-host", "nohost"], "--add-host"),
        (vec!["--dns", "dns.example"], "--dns"),
        (vec!["--cap-add", "CAP_FLY"], "unknown capability"),
        (
            vec!["--security-opt", "seccomp=/no/such/profile.json"],
            "/no/such/profile.json",
        ),
        (vec!["--memory", "1k"], "minimum is 6m"),
    ] {
        let dir = env.bundles.work.path().join("bad");
        let mut args = vec!["bundle", IMAGE, dir.to_str().unwrap()];
        let net_args = env.net.bundle_args();
        if !opts.iter().any(|o| o.starts_with("--network")) {
            args.extend(net_args.iter().map(String::as_str));
        }
        args.extend(opts.iter().copied());
        let out = env.bundles.imgtool(&args);
        assert_eq!(out.code, 1, "{opts:?}: {out:?}");
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{opts:?}: one line: {out:?}");
        assert!(lines[0].contains(want), "{opts:?}: {}", lines[0]);
        assert!(!dir.exists(), "{opts:?} left {}", dir.display());
    }
}

/// The container init's pid from `state`.
fn init_pid(rt: &Runtime, id: &str) -> i32 {
    rt.state(id).expect("state")["pid"].as_i64().expect("pid") as i32
}

fn kill9(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// A small deterministic generator for the kill delays (the seed is printed).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn teardown_leaves_nothing_whichever_way_the_container_ends() {
    let env = Env::new();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let sleeper = env.bundle("sleeper", &["-p", &publish], &sh("sleep 600"));
    let quick = env.bundle("quick", &["-p", &publish], &sh("exit 0"));
    let rt = &env.rt;
    let running = |id: &str| {
        rt.wait_status(id, "running", Duration::from_secs(20));
    };
    let start = |id: &str| {
        env.run_detached(&sleeper, id);
        running(id);
        assert!(
            env.net.leftovers().iter().any(|l| l.contains("IPAM lease")),
            "attached while running"
        );
    };

    // It runs to its end under `run`.
    let g = rt.guard("end-run");
    assert_eq!(rt.run(&quick, g.id()).code, 0);
    env.assert_nothing_left("run to completion");

    // delete -f of a running container.
    let g = rt.guard("end-delete-f");
    start(g.id());
    rt.exec(&["delete", "-f", g.id()]).ok();
    env.assert_nothing_left("delete -f");

    // kill -9 of its init from the host, then delete.
    let g = rt.guard("end-kill9");
    start(g.id());
    kill9(init_pid(rt, g.id()));
    rt.wait_status(g.id(), "stopped", Duration::from_secs(20));
    rt.exec(&["delete", g.id()]).ok();
    env.assert_nothing_left("kill -9 of the container, then delete");

    // runtime kill, then delete.
    let g = rt.guard("end-kill");
    start(g.id());
    rt.exec(&["kill", g.id(), "KILL"]).ok();
    rt.wait_status(g.id(), "stopped", Duration::from_secs(20));
    rt.exec(&["delete", g.id()]).ok();
    env.assert_nothing_left("runtime kill KILL, then delete");

    // Created, never started, deleted.
    let g = rt.guard("end-created");
    rt.create(&sleeper, g.id()).ok();
    assert!(!env.net.leftovers().is_empty(), "create attached it");
    rt.exec(&["delete", g.id()]).ok();
    env.assert_nothing_left("create, then delete");

    // kill -9 of a foreground `run` while the container runs, then delete -f.
    let g = rt.guard("end-run-killed");
    let mut run = rt.command();
    run.args(["run", "--bundle", &sleeper.to_string_lossy(), g.id()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = run.spawn().expect("runtime run");
    running(g.id());
    kill9(child.id() as i32);
    let _ = child.wait();
    rt.exec(&["delete", "-f", g.id()]).ok();
    env.assert_nothing_left("kill -9 of `runtime run`, then delete -f");
}

/// What the hook records among `left` say: whose init still runs (the runtime left its
/// container's init behind with no state to `delete -f`: issue 12 item 4) and whether a
/// hook was still at work.
fn explain_records(left: &[String]) -> String {
    let mut out = String::new();
    for l in left {
        let Some(path) = l.strip_prefix("hook record ") else {
            continue;
        };
        let rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap_or_default()).unwrap_or_default();
        let pid = rec["init"]["pid"].as_i64().unwrap_or(0);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_else(|_| "gone".into());
        out.push_str(&format!(
            "record of {}: init {pid} ({cmdline}), hook's runtime {}\n",
            rec["id"], rec["runtime"]
        ));
    }
    out
}

/// Waits (10 s at most) until the container inits that records among `left` name have
/// exited; one that does not was left behind by the runtime (issue 12 item 4).
fn wait_for_inits_to_end(left: &[String], iteration: usize, seed: u64) {
    for l in left {
        let Some(path) = l.strip_prefix("hook record ") else {
            continue;
        };
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let rec: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let pid = rec["init"]["pid"].as_i64().unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(") ").map(|(_, r)| r.chars().next());
            if stat.is_empty() || state == Some(Some('Z')) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "iteration {iteration} (seed {seed}): the container's init {pid} still runs 10 s after \
                 kill -9 of create and delete -f: the runtime left it behind (issue 12 item 4)"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// kill -9 of `runtime create` at random instants, each followed by what a user does
/// (`delete -f`) and, for a runtime killed before it kept any state (so `delete -f`
/// finds nothing to run the poststop hook of), the sweep every hook run makes (here
/// `imgtool network-hook sweep`). Nothing of the network may stay.
#[test]
fn kill_9_of_the_runtime_during_create_leaves_nothing_after_delete_and_a_sweep() {
    let env = Env::new();
    let b = env.bundle(
        "victim",
        &["-p", &format!("127.0.0.1:{}:80", free_port())],
        &sh("sleep 600"),
    );
    let iterations = 40;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Lcg(seed);
    let (mut attached_at_kill, mut state_at_kill) = (0, 0);
    for i in 0..iterations {
        let g = env.rt.guard("kcreate");
        let mut create = env.rt.command();
        create
            .args(["create", "--bundle", &b.to_string_lossy(), g.id()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = create.spawn().expect("runtime create");
        std::thread::sleep(Duration::from_millis(rng.next(150)));
        kill9(child.id() as i32);
        let _ = child.wait();
        if !env.net.leftovers().is_empty() {
            attached_at_kill += 1;
        }
        if env.rt.state(g.id()).is_some() {
            state_at_kill += 1;
        }
        env.rt.exec(&["delete", "-f", g.id()]);
        // The network is the hooks' business, the container's processes the runtime's:
        // once they are gone (a killed runtime's init dies with it, or by delete -f),
        // a sweep must leave nothing.
        wait_for_inits_to_end(&env.net.leftovers(), i, seed);
        let sweep = Command::new(bins::imgtool())
            .args(["network-hook", "sweep"])
            .output()
            .unwrap();
        assert!(
            sweep.status.success(),
            "sweep: {}",
            String::from_utf8_lossy(&sweep.stderr)
        );
        let left = env.net.leftovers();
        assert!(
            left.is_empty(),
            "iteration {i} (seed {seed}): after kill -9 of create, delete -f and a sweep: {left:#?}\n{}",
            explain_records(&left)
        );
    }
    eprintln!(
        "kill -9 of create: {iterations} iterations (seed {seed}), {attached_at_kill} killed after the hook attached, {state_at_kill} with state kept"
    );
}

/// The same kind of bundle under containerd (`ctr run --config` through the runc v2
/// shim with `--runc-binary`): the shim runs the runtime on the bundle's config, whose
/// hooks attach and detach the container with nothing else involved.
#[test]
fn containerd_runs_a_bridge_bundle_with_its_published_port() {
    let Some(ctd) = spec_tests::containerd::Containerd::start("spec-net") else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "containerd is missing under CI"
        );
        return;
    };
    let env = Env::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let b = env.bundle("ctd", &["-p", &format!("127.0.0.1:{port}:80")], &httpd());
    // containerd's bundle is its own directory: the config names our rootfs absolutely.
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    cfg["root"]["path"] = serde_json::json!(b.join("rootfs"));
    let conf = env.bundles.work.path().join("ctd-config.json");
    std::fs::write(&conf, cfg.to_string()).unwrap();
    let rt = bins::runtime().to_string_lossy().into_owned();
    let id = spec_tests::container::unique_id("ctdnet");
    let out = ctd.ctr(&[
        "run",
        "-d",
        "--runc-binary",
        &rt,
        "--config",
        &conf.to_string_lossy(),
        &id,
    ]);
    assert_eq!(out.code, 0, "{out:?}\n{}", ctd.log());
    let body = wait_for_http(&url);
    assert_eq!(
        body.as_deref().map(str::trim),
        Some(BODY),
        "curl {url}\n{}",
        ctd.log()
    );
    ctd.ctr(&["task", "kill", "-s", "KILL", &id]).ok();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ctd
        .ctr(&["task", "ls"])
        .stdout
        .lines()
        .any(|l| l.starts_with(&id) && l.contains("STOPPED"))
    {
        assert!(
            Instant::now() < deadline,
            "task did not stop: {}",
            ctd.ctr(&["task", "ls"]).stdout
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ctd.ctr(&["task", "delete", &id]).ok();
    ctd.ctr(&["container", "delete", &id]).ok();
    env.assert_nothing_left("containerd's task delete");
    assert_eq!(curl(&url), None, "the port is closed with the container");
}

/// A bridge bundle whose config was edited to share the host's network namespace (or
/// another container's) must not touch it: attaching would add an `eth0` to the host,
/// and undoing a failed attach would delete the host's. The hook refuses, the runtime
/// reports it, and the host's interfaces are as they were.
#[test]
fn the_hook_refuses_a_network_namespace_that_is_not_new() {
    let env = Env::new();
    let b = env.bundle("shared", &[], &sh("true"));
    let cfg_path = b.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "network");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let before: Vec<String> = host_interfaces();
    let g = env.rt.guard("shared");
    let out = env.rt.run(&b, g.id());
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("it is the host's"), "{out:?}");
    let after = host_interfaces();
    // Other tests' (and benchmarks') bridges and veths come and go meanwhile: only the
    // host's own interfaces are compared (seen: a parallel test's bridge gone).
    let concurrent = |i: &&String| i.starts_with("veth") || i.starts_with("imgt");
    for i in before.iter().filter(|i| !concurrent(i)) {
        assert!(after.contains(i), "the host lost {i}: {after:?}");
    }
    env.assert_nothing_left("a refused attach");
}

fn host_interfaces() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}
