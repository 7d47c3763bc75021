//! Starting a created container with the runtime-spec order of hooks. libcontainer runs
//! the poststart hooks as soon as it has told the init to go, concurrently with the
//! init's startContainer hooks; the spec puts poststart after the user process has been
//! started. So the poststart hooks are held back from libcontainer and run here once the
//! init has exec'd the user program (or has exited).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use libcontainer::config::YoukiConfig;
use libcontainer::container::Container;

use crate::container::test_switches::phase;
use libcontainer::error::chain;

/// How long to wait for the init to exec before running poststart anyway.
const EXEC_WAIT: Duration = Duration::from_secs(10);

pub fn start(container: &mut Container) -> Result<()> {
    let dir = container.root.clone();
    let config = YoukiConfig::load(&dir).with_context(|| {
        format!(
            "cannot read the saved config of container {}",
            container.id()
        )
    })?;
    let poststart = config
        .hooks
        .as_ref()
        .and_then(|h| h.poststart().clone())
        .filter(|h| !h.is_empty());
    let Some(poststart) = poststart else {
        return container
            .start()
            .map_err(|e| anyhow::anyhow!("{}", chain(&e)));
    };

    let mut held_back = config.clone();
    if let Some(h) = held_back.hooks.as_mut() {
        h.set_poststart(None);
    }
    held_back
        .save(&dir)
        .context("cannot save the container config")?;
    let pid = container.pid();
    let before = pid.and_then(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok());
    let started = container.start();
    // Put the full config back whatever happened: poststop and later reads need it.
    config
        .save(&dir)
        .context("cannot save the container config")?;
    started.map_err(|e| anyhow::anyhow!("{}", chain(&e)))?;
    phase("start:before-poststart");

    if let Some(pid) = pid {
        let deadline = Instant::now() + EXEC_WAIT;
        loop {
            let now = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            if now.is_none() || now != before || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    // runtime-spec: a failing poststart hook is logged and the remaining hooks and the
    // lifecycle continue. They run in the bundle, as runc's and as prestart and
    // createRuntime hooks do.
    let failures = libcontainer::hooks::run_hooks_warn_on_failure(
        Some(&poststart),
        Some(&container.state),
        Some(container.bundle().as_path()),
        None,
        None,
    );
    super::hook_warnings::report("poststart", &failures);
    Ok(())
}
