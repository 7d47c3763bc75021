//! What clients read from the runtime's stderr and `--log` file, compared with runc 1.1.5
//! on the same scenarios: the phrases containerd's shim, go-runc and podman match in
//! error texts, the shape of each record (logrus text, JSON with `--log-format json`, a
//! bare message on stderr besides the `--log` record), debug records only in the log
//! file, and no message naming youki or saying "error error".

use std::time::Duration;

use serde_json::Value;
use spec_tests::bundle::Bundle;
use spec_tests::container::{ContainerGuard, Outcome, Runtime};

const T: Duration = Duration::from_secs(10);

/// The reference runtime, for the differential checks.
fn runc() -> Runtime {
    Runtime::with_bin(spec_tests::host::runc())
}

/// A container of `rt` running `sleep 600`, started detached; deleted when the guard goes.
fn running<'a>(rt: &'a Runtime, name: &str) -> (Bundle, ContainerGuard<'a>) {
    let mut b = Bundle::busybox();
    b.args(&["sleep", "600"]);
    let c = rt.guard(name);
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    rt.wait_status(c.id(), "running", T);
    (b, c)
}

/// What containerd's runc shim concludes from a failed `kill` (pkg/process/utils.go,
/// checkKillError): the shim stops a pod only when this is not "unknown".
fn containerd_kill_verdict(stderr: &str) -> &'static str {
    if stderr.contains("os: process already finished")
        || stderr.contains("container not running")
        || stderr.to_lowercase().contains("no such process")
    {
        "process already finished"
    } else if stderr.contains("does not exist") {
        "no such container"
    } else {
        "unknown error after kill"
    }
}

#[test]
fn containerds_kill_check_sees_a_stopped_container_as_finished() {
    // The matcher itself tells the words apart: the wording this runtime used before
    // (and the reason Kubernetes could not stop pods) is "unknown" to it.
    assert_eq!(
        containerd_kill_verdict("runtime: container abc is not running"),
        "unknown error after kill"
    );
    for rt in [Runtime::new(), runc()] {
        let (_b, c) = running(&rt, "killstopped");
        let id = c.id();
        rt.exec(&["kill", id, "KILL"]).ok();
        rt.wait_status(id, "stopped", T);
        let out = rt.exec(&["kill", id, "TERM"]);
        assert_eq!(out.code, 1, "{:?}: {out:?}", rt.bin());
        assert_eq!(
            containerd_kill_verdict(&out.stderr),
            "process already finished",
            "{:?}: {out:?}",
            rt.bin()
        );
        let out = rt.exec(&["kill", "st-never-created", "TERM"]);
        assert_eq!(
            containerd_kill_verdict(&out.stderr),
            "no such container",
            "{:?}: {out:?}",
            rt.bin()
        );
    }
}

/// One failing call: how to set it up on a runtime, and the phrase runc's message holds.
struct Case {
    name: &'static str,
    phrase: &'static str,
    run: fn(&Runtime, &str) -> Outcome,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "state of a missing container",
            phrase: "does not exist",
            run: |rt, _| rt.exec(&["state", "st-missing-container"]),
        },
        Case {
            name: "delete of a missing container",
            phrase: "does not exist",
            run: |rt, _| rt.exec(&["delete", "st-missing-container"]),
        },
        Case {
            name: "create of an existing id",
            phrase: "already exists",
            run: |rt, id| {
                let b = Bundle::busybox();
                rt.exec(&["create", "--bundle", &b.path().to_string_lossy(), id])
            },
        },
        Case {
            name: "start of a running container",
            phrase: "cannot start an already running container",
            run: |rt, id| rt.exec(&["start", id]),
        },
        Case {
            name: "resume of a running container",
            phrase: "container not paused",
            run: |rt, id| rt.exec(&["resume", id]),
        },
        Case {
            name: "delete of a running container",
            phrase: "that is not stopped: running",
            run: |rt, id| rt.exec(&["delete", id]),
        },
        Case {
            name: "exec of a program not in PATH",
            phrase: "executable file not found in $PATH",
            run: |rt, id| rt.exec(&["exec", id, "st-no-such-program"]),
        },
        Case {
            name: "exec of a file that is not executable",
            phrase: "permission denied",
            run: |rt, id| rt.exec(&["exec", id, "/etc/passwd"]),
        },
        Case {
            name: "exec of a missing path",
            phrase: "no such file or directory",
            run: |rt, id| rt.exec(&["exec", id, "/st/no/such/file"]),
        },
        Case {
            name: "exec into a paused container",
            phrase: "cannot exec in a paused container",
            run: |rt, id| {
                rt.exec(&["pause", id]).ok();
                let out = rt.exec(&["exec", id, "true"]);
                rt.exec(&["resume", id]).ok();
                out
            },
        },
        Case {
            name: "pause of a stopped container",
            phrase: "container not running",
            run: |rt, id| {
                rt.exec(&["kill", id, "KILL"]).ok();
                rt.wait_status(id, "stopped", T);
                rt.exec(&["pause", id])
            },
        },
        Case {
            name: "update of a stopped container",
            phrase: "container not running",
            run: |rt, id| {
                rt.exec(&["kill", id, "KILL"]).ok();
                rt.wait_status(id, "stopped", T);
                rt.exec(&["update", "--pids-limit", "10", id])
            },
        },
        Case {
            name: "exec into a stopped container",
            phrase: "cannot exec in a stopped container",
            run: |rt, id| {
                rt.exec(&["kill", id, "KILL"]).ok();
                rt.wait_status(id, "stopped", T);
                rt.exec(&["exec", id, "true"])
            },
        },
    ]
}

#[test]
fn errors_a_client_acts_on_are_worded_as_runc() {
    let ours = Runtime::new();
    let reference = runc();
    let mut compared = 0;
    for case in cases() {
        let mut codes = Vec::new();
        for rt in [&ours, &reference] {
            let (_b, c) = running(rt, "wording");
            let out = (case.run)(rt, c.id());
            drop(c);
            assert_ne!(out.code, 0, "{}: {:?}: {out:?}", case.name, rt.bin());
            assert!(
                out.stderr.contains(case.phrase),
                "{}: {:?} does not say {:?}: {out:?}",
                case.name,
                rt.bin(),
                case.phrase
            );
            codes.push(out.code);
        }
        assert_eq!(codes[0], codes[1], "{}: exit codes (ours, runc)", case.name);
        compared += 1;
    }
    println!("client-matched errors compared with runc: {compared}, all agree");
}

/// The one record a failed call leaves on stderr without `--log`, parsed as logrus's text
/// form: `time="..." level=error msg="..."`.
fn logrus_text(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("time=\"")?;
    let (time, rest) = rest.split_once("\" level=")?;
    if !time.contains('T') {
        return None;
    }
    let (level, msg) = rest.split_once(" msg=")?;
    Some((level.to_string(), msg.trim_matches('"').to_string()))
}

#[test]
fn records_are_shaped_like_runcs() {
    for rt in [Runtime::new(), runc()] {
        let who = format!("{:?}", rt.bin());
        // No --log: one logrus text record on stderr, nothing on stdout.
        let out = rt.exec(&["state", "st-missing-container"]);
        assert_eq!(out.stdout, "", "{who}: {out:?}");
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{who}: {out:?}");
        let (level, msg) = logrus_text(lines[0]).unwrap_or_else(|| panic!("{who}: {out:?}"));
        assert_eq!(level, "error", "{who}");
        assert!(msg.contains("does not exist"), "{who}: {msg}");

        // --log-format json, no --log: one JSON record on stderr.
        let out = rt.exec(&["--log-format", "json", "state", "st-missing-container"]);
        let record: Value = serde_json::from_str(out.stderr.trim())
            .unwrap_or_else(|e| panic!("{who}: not one JSON record ({e}): {out:?}"));
        let keys: Vec<&String> = record.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["level", "msg", "time"], "{who}");
        assert_eq!(record["level"], "error", "{who}");

        // --log FILE: the record in the file, the bare message on stderr (what go-runc
        // hands its caller), in both formats.
        for format in ["text", "json"] {
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("log");
            let out = rt.exec(&[
                "--log",
                &log.to_string_lossy(),
                "--log-format",
                format,
                "kill",
                "st-missing-container",
            ]);
            assert_ne!(out.code, 0, "{who}");
            assert_eq!(out.stderr.lines().count(), 1, "{who} {format}: {out:?}");
            assert!(
                out.stderr.contains("does not exist") && !out.stderr.contains("level"),
                "{who} {format}: stderr is not the bare message: {out:?}"
            );
            let text = std::fs::read_to_string(&log).unwrap();
            let last = text.lines().last().unwrap_or_default();
            match format {
                "json" => {
                    let r: Value = serde_json::from_str(last).unwrap();
                    assert_eq!(r["level"], "error", "{who}: {text}");
                    assert!(r["msg"].as_str().unwrap().contains("does not exist"));
                }
                _ => {
                    let (level, msg) = logrus_text(last).unwrap_or_else(|| panic!("{who}: {text}"));
                    assert_eq!(level, "error");
                    assert!(msg.contains("does not exist"), "{msg}");
                }
            }
        }
    }
}

#[test]
fn debug_records_go_to_the_log_file_only_and_are_one_line_each() {
    for rt in [Runtime::new(), runc()] {
        let who = format!("{:?}", rt.bin());
        let (_b, c) = running(&rt, "debuglog");
        let id = c.id().to_string();
        for format in ["text", "json"] {
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("log");
            let out = rt
                .exec(&[
                    "--debug",
                    "--log",
                    &log.to_string_lossy(),
                    "--log-format",
                    format,
                    "exec",
                    &id,
                    "true",
                ])
                .ok();
            assert_eq!(out.stderr, "", "{who} {format}: debug on stderr");
            let text = std::fs::read_to_string(&log).unwrap();
            let mut debug = 0;
            for line in text.lines() {
                // A record per line: a struct dumped over many lines fails here.
                let level = match format {
                    "json" => serde_json::from_str::<Value>(line)
                        .unwrap_or_else(|e| panic!("{who}: not a JSON record ({e}): {line}"))
                        ["level"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    _ => {
                        logrus_text(line)
                            .unwrap_or_else(|| panic!("{who}: not a logrus record: {line}"))
                            .0
                    }
                };
                debug += usize::from(level == "debug");
            }
            assert!(debug > 0, "{who} {format}: no debug record in {text}");
        }
        // Without --log the debug records go to stderr, still one per line.
        let out = rt.exec(&["--debug", "exec", &id, "true"]).ok();
        assert!(
            out.stderr.lines().all(|l| logrus_text(l).is_some()),
            "{who}: {out:?}"
        );
    }
}

#[test]
fn a_warning_goes_where_the_records_go() {
    // runc's warnings are logrus records too: with --log they are in the file only.
    // A container sharing another's cgroup is warned about.
    let rt = Runtime::new();
    let (_b1, c1) = running(&rt, "warnfirst");
    let first = c1.id().to_string();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "600"])
        .set("/linux/cgroupsPath", serde_json::json!(format!("/{first}")));
    let second = rt.guard("warnsecond");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let out = rt
        .exec(&[
            "--log",
            &log.to_string_lossy(),
            "run",
            "-d",
            "--bundle",
            &b.path().to_string_lossy(),
            second.id(),
        ])
        .ok();
    assert_eq!(out.stderr, "", "{out:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let (level, msg) =
        logrus_text(text.lines().next().unwrap_or_default()).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(level, "warning");
    assert!(msg.contains("container's cgroup is not empty"), "{msg}");
    // The second shares the first's cgroup: deleting it ends both.
    rt.exec(&["delete", "--force", second.id()]).ok();
}

/// Whether a message names youki or stutters "error error" (case-insensitive).
fn bad_wording(text: &str) -> Option<&'static str> {
    let lower = text.to_lowercase();
    if lower.contains("youki") {
        Some("names youki")
    } else if lower.contains("error error") {
        Some("says error error")
    } else {
        None
    }
}

#[test]
fn no_message_names_youki_or_says_error_error() {
    // The detector finds the texts this runtime printed before.
    assert!(bad_wording("cannot allocate tty if youki will detach").is_some());
    assert!(bad_wording("exec process failed with error error in executing").is_some());

    let rt = Runtime::new();
    let mut outs = Vec::new();
    for case in cases() {
        let (_b, c) = running(&rt, "badwording");
        outs.push((case.name, (case.run)(&rt, c.id())));
    }
    // A terminal asked for with nobody to hand it to.
    let mut b = Bundle::busybox();
    b.set("/process/terminal", Value::Bool(true));
    let c = rt.guard("ttydetach");
    outs.push((
        "run -d with a terminal and no console socket",
        rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()]),
    ));
    // A program that does not exist, at create.
    let mut b = Bundle::busybox();
    b.args(&["st-no-such-program"]);
    let c = rt.guard("nosuchprog");
    outs.push(("run of a missing program", rt.run(b.path(), c.id())));
    for (name, out) in &outs {
        assert_ne!(out.code, 0, "{name}: {out:?}");
        assert_eq!(bad_wording(&out.stderr), None, "{name}: {out:?}");
    }

    // Nor do the names of the container's processes.
    let mut b = Bundle::busybox();
    b.args(&["sleep", "600"]);
    let c = rt.guard("procname");
    rt.create(b.path(), c.id()).ok();
    let pid = rt.state(c.id()).unwrap()["pid"].as_i64().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(bad_wording(&comm), None, "{comm}");
    println!("messages checked: {}", outs.len());
}
