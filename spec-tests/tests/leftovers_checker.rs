//! The "nothing left" checker (`spec_tests::leftovers`) sees each kind of leftover it
//! claims to: the negative control of every test that uses it. Each kind is left on
//! purpose under a unique id, found, then removed, after which the checker is quiet.

use std::process::{Command, Stdio};

use spec_tests::container::unique_id;
use spec_tests::leftovers::{cgroup_mounts, Probe};

/// Kills and reaps a child on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sleeper(args: &[&str]) -> Child {
    Child(
        Command::new("sh")
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("sh"),
    )
}

#[test]
fn every_kind_of_leftover_is_seen() {
    let id = unique_id("leftover");
    let state = tempfile::tempdir().unwrap();
    let mounts = cgroup_mounts();
    let v1_memory = mounts
        .iter()
        .find(|m| m.ends_with("memory"))
        .expect("a cgroup v1 memory hierarchy")
        .clone();
    let v2 = std::path::PathBuf::from("/sys/fs/cgroup/unified");

    // cgroups: the id's own name in v1, nested and prefixed (a systemd-like scope) in v2.
    let v1_cg = v1_memory.join(format!(":youki:{id}"));
    let v2_cg = v2.join(format!("spec-leftover-{id}.slice"));
    let v2_nested = v2_cg.join(format!("prefix-{id}.scope"));
    std::fs::create_dir(&v1_cg).unwrap();
    std::fs::create_dir_all(&v2_nested).unwrap();
    // A process in the v1 cgroup (found through it, its command line says nothing), one
    // naming the id on its command line, and one only listed by the test.
    let in_cgroup = sleeper(&["-c", "exec sleep 60"]);
    std::fs::write(v1_cg.join("cgroup.procs"), in_cgroup.0.id().to_string()).unwrap();
    // (a loop of short sleeps: killing the shell leaves no long sleep behind)
    let naming = sleeper(&["-c", &format!("while :; do sleep 1; done; : {id}")]);
    let listed = sleeper(&["-c", "exec sleep 61"]);
    // A mount naming the id, and the id's files in a state root.
    let mnt = state.path().join(format!("mnt-{id}"));
    std::fs::create_dir(&mnt).unwrap();
    assert!(Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap()
        .success());
    std::fs::write(state.path().join(format!(".{id}.lock")), "").unwrap();
    let gone = state.path().join("must-be-gone");
    std::fs::write(&gone, "").unwrap();

    let probe = Probe::new(&id)
        .state_root(state.path())
        .gone(&gone)
        .processes([listed.0.id() as i32]);
    let left = probe.find();
    let has = |needle: &str| left.iter().any(|l| l.contains(needle));
    assert!(has(&format!("cgroup {}", v1_cg.display())), "{left:#?}");
    assert!(has(&format!("cgroup {}", v2_cg.display())), "{left:#?}");
    assert!(has(&format!("cgroup {}", v2_nested.display())), "{left:#?}");
    assert!(
        has(&format!("process {} in its cgroup", in_cgroup.0.id())),
        "{left:#?}"
    );
    assert!(
        has(&format!("process {} naming it", naming.0.id())),
        "{left:#?}"
    );
    assert!(
        has(&format!("process {} of the container", listed.0.id())),
        "{left:#?}"
    );
    assert!(has(&format!("mnt-{id}")), "{left:#?}");
    assert!(
        has(&format!(
            "state {}",
            state.path().join(format!(".{id}.lock")).display()
        )),
        "{left:#?}"
    );
    assert!(has(&format!("path {}", gone.display())), "{left:#?}");
    eprintln!("the checker saw {} leftovers: {left:#?}", left.len());

    // Removed, nothing is reported.
    drop((in_cgroup, naming, listed));
    assert!(Command::new("umount").arg(&mnt).status().unwrap().success());
    std::fs::remove_dir(&mnt).unwrap();
    std::fs::remove_file(state.path().join(format!(".{id}.lock"))).unwrap();
    std::fs::remove_file(&gone).unwrap();
    for d in [&v1_cg, &v2_nested, &v2_cg] {
        std::fs::remove_dir(d).unwrap();
    }
    probe.assert_nothing_left("after removing everything");
}
