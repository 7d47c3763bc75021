//! Races: many containers at once, and processes racing on one id. No corrupted state,
//! exactly one winner where one id is contested, clear one-line errors for the others,
//! nothing left behind.

use std::process::Command;
use std::sync::{Arc, Barrier};

use spec_tests::bundle::Bundle;
use spec_tests::container::{capture, cgroup_dirs_named, unique_id, Outcome, Runtime};

/// Runs `runtime --root R ARGS` from `n` threads released together; returns the outcomes.
fn at_once(rt: &Runtime, n: usize, args: impl Fn(usize) -> Vec<String> + Sync) -> Vec<Outcome> {
    let barrier = Arc::new(Barrier::new(n));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let barrier = barrier.clone();
                let args = args(i);
                s.spawn(move || {
                    let mut cmd: Command = rt.command();
                    cmd.args(&args);
                    barrier.wait();
                    capture(cmd)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// One non-empty stderr line that names the id.
fn assert_clear_error(out: &Outcome, id: &str) {
    assert_ne!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one error line: {out:?}");
    assert!(lines[0].contains(id), "the error names {id}: {out:?}");
}

#[test]
fn hundred_containers_created_started_and_deleted_in_parallel() {
    const N: usize = 100;
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    // Long enough to outlive the test under any load (the whole test took 38 s in a CI
    // run, and a `sleep 30` started early had ended by the time its state was read); the
    // guards and the delete below end them.
    b.args(&["sleep", "600"]);
    let bundle = b.path().to_string_lossy().into_owned();
    let ids: Vec<String> = (0..N).map(|i| unique_id(&format!("par{i}"))).collect();
    let _guards: Vec<_> = (0..N).map(|i| rt.guard(&format!("par{i}"))).collect();

    let created = at_once(&rt, N, |i| {
        vec![
            "create".into(),
            "--bundle".into(),
            bundle.clone(),
            ids[i].clone(),
        ]
    });
    for out in created {
        assert_eq!(out.code, 0, "create: {out:?}");
    }
    let started = at_once(&rt, N, |i| vec!["start".into(), ids[i].clone()]);
    for out in started {
        assert_eq!(out.code, 0, "start: {out:?}");
    }
    // Every state is whole and running, and `list` shows all of them.
    let list = rt.exec(&["list", "-q"]).ok();
    let listed: std::collections::BTreeSet<&str> = list.stdout.lines().collect();
    for id in &ids {
        assert!(listed.contains(id.as_str()), "{id} missing from list");
        let state = rt.state(id).unwrap_or_else(|| panic!("state of {id}"));
        assert_eq!(state["status"], "running", "{id}: {state}");
        assert!(!cgroup_dirs_named(id).is_empty(), "{id} has no cgroup");
    }
    let deleted = at_once(&rt, N, |i| {
        vec!["delete".into(), "--force".into(), ids[i].clone()]
    });
    for out in deleted {
        assert_eq!(out.code, 0, "delete: {out:?}");
    }
    for id in &ids {
        rt.nothing_left_of(id).assert_nothing_left("runtime_races");
    }
    assert_eq!(rt.exec(&["list", "-q"]).ok().stdout.trim(), "");
}

#[test]
fn ten_processes_racing_create_then_delete_on_one_id() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    let bundle = b.path().to_string_lossy().into_owned();
    let c = rt.guard("onecreate");
    let id = c.id().to_string();

    let outs = at_once(&rt, 10, |_| {
        vec![
            "create".into(),
            "--bundle".into(),
            bundle.clone(),
            id.clone(),
        ]
    });
    let winners = outs.iter().filter(|o| o.code == 0).count();
    assert_eq!(winners, 1, "exactly one create wins: {outs:?}");
    for out in outs.iter().filter(|o| o.code != 0) {
        assert_clear_error(out, &id);
        assert!(out.stderr.contains("exists"), "{out:?}");
    }
    // The winner's container is whole.
    let state = rt.state(&id).expect("state of the winner");
    assert_eq!(state["status"], "created", "{state}");
    let pid = state["pid"].as_i64().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());

    // Ten plain deletes of the created container: one removes it, the others are told it
    // does not exist.
    let outs = at_once(&rt, 10, |_| vec!["delete".into(), id.clone()]);
    let winners = outs.iter().filter(|o| o.code == 0).count();
    assert_eq!(winners, 1, "exactly one delete wins: {outs:?}");
    for out in outs.iter().filter(|o| o.code != 0) {
        assert_clear_error(out, &id);
        assert!(out.stderr.contains("does not exist"), "{out:?}");
    }
    rt.nothing_left_of(&id).assert_nothing_left("runtime_races");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
            let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            s.contains(") Z")
        }
    );
}

#[test]
fn creates_and_deletes_racing_on_one_id_leave_a_whole_container_or_nothing() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    let bundle = b.path().to_string_lossy().into_owned();
    let c = rt.guard("mixed");
    let id = c.id().to_string();
    for round in 0..4 {
        let outs = at_once(&rt, 10, |i| {
            if i % 2 == 0 {
                vec![
                    "create".into(),
                    "--bundle".into(),
                    bundle.clone(),
                    id.clone(),
                ]
            } else {
                vec!["delete".into(), "--force".into(), id.clone()]
            }
        });
        let creates_won = outs.iter().step_by(2).filter(|o| o.code == 0).count();
        assert!(creates_won <= 1 + 4, "round {round}: {outs:?}");
        for (i, out) in outs.iter().enumerate() {
            if out.code != 0 {
                assert_eq!(i % 2, 0, "round {round}: delete --force failed: {out:?}");
                assert_clear_error(out, &id);
            }
        }
        // Either a whole container or nothing at all.
        match rt.state(&id) {
            Some(state) => {
                assert_eq!(state["status"], "created", "round {round}: {state}");
                assert!(
                    !cgroup_dirs_named(&id).is_empty(),
                    "round {round}: no cgroup"
                );
            }
            None => {
                let out = rt.exec(&["state", &id]);
                assert!(
                    out.stderr.contains("does not exist"),
                    "round {round}: {out:?}"
                );
                rt.nothing_left_of(&id).assert_nothing_left("runtime_races");
            }
        }
        rt.exec(&["delete", "--force", &id]).ok();
        rt.nothing_left_of(&id).assert_nothing_left("runtime_races");
    }
}
