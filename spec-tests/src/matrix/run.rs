//! Running one row on one runtime: a private state root, a busybox bundle with the row's
//! edits, the steps in order, each turned into labelled observations already normalised
//! (so the two runtimes' lists compare with `==`). Everything the row made is removed when
//! the context drops, also when a step panics.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use serde_json::Value;
use tempfile::TempDir;

use super::json::OJson;
use super::normalise::{Class, Normaliser};
use super::observe;
use super::row::{Cli, Edit, Row, Setup, Stdout, Step};
use crate::bundle::Bundle;

/// The label suffix of a stderr shape observation.
pub const SHAPE: &str = "· stderr shape";

/// One labelled, normalised observation.
pub type Observation = (String, String);

/// The runtime a row runs on, and edits applied only on this side (negative controls).
#[derive(Clone)]
pub struct Side {
    pub bin: PathBuf,
    /// One letter in the container id (`a` reference, `b` candidate): ids of both sides
    /// have the same length, so padded tables line up alike.
    pub tag: char,
    pub extra: Vec<Edit>,
}

/// The per-side state of a running row, handed to observers and host steps.
pub struct Ctx {
    pub bin: PathBuf,
    pub id: String,
    pub bundle: Bundle,
    pub norm: Normaliser,
    root: TempDir,
    dir: TempDir,
    /// The container's cgroup directories, learned from /proc/PID/cgroup while it lived.
    pub cgroups: Vec<PathBuf>,
    background: HashMap<usize, (Child, Instant, Duration)>,
    cleanups: Vec<Box<dyn FnOnce() + Send>>,
}

impl Ctx {
    fn new(bin: PathBuf, id: String) -> anyhow::Result<Self> {
        let root = tempfile::Builder::new().prefix("mx-root-").tempdir()?;
        let dir = tempfile::Builder::new().prefix("mx-dir-").tempdir()?;
        let bundle = Bundle::busybox();
        let mut norm = Normaliser::default();
        norm.replace(bundle.path().to_string_lossy(), "<BUNDLE>");
        norm.replace(root.path().to_string_lossy(), "<ROOT>");
        norm.replace(dir.path().to_string_lossy(), "<DIR>");
        norm.replace(id.clone(), "<ID>");
        norm.replace(bin.to_string_lossy(), "<RUNTIME>");
        Ok(Self {
            bin,
            id,
            bundle,
            norm,
            root,
            dir,
            cgroups: Vec::new(),
            background: HashMap::new(),
            cleanups: Vec::new(),
        })
    }

    /// The scratch directory (`{dir}`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The state root passed as `--root`.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Replaces `{id}`, `{bundle}`, `{dir}`, `{root}` in a string.
    pub fn expand(&self, s: &str) -> String {
        s.replace("{id}", &self.id)
            .replace("{bundle}", &self.bundle.path().to_string_lossy())
            .replace("{dir}", &self.dir.path().to_string_lossy())
            .replace("{root}", &self.root.path().to_string_lossy())
    }

    /// `RUNTIME --root ROOT` run in the bundle directory.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path());
        c.current_dir(self.bundle.path());
        c
    }

    /// Runs `RUNTIME --root ROOT ARGS` to completion (30 s at most): exit code, stdout.
    pub fn quiet(&self, args: &[&str]) -> (i32, String) {
        let mut c = self.command();
        c.args(args).stdin(Stdio::null()).stderr(Stdio::null());
        let out_path = self.dir.path().join(".quiet.out");
        let Ok(out) = File::create(&out_path) else {
            return (-1, String::new());
        };
        c.stdout(out);
        let code = match c.spawn() {
            Ok(child) => wait_deadline(child, Duration::from_secs(30))
                .map(|s| s.code().unwrap_or(-1))
                .unwrap_or(-1),
            Err(_) => -1,
        };
        (code, std::fs::read_to_string(&out_path).unwrap_or_default())
    }

    /// `state ID` parsed (key order kept), or None.
    pub fn state(&self) -> Option<OJson> {
        let (code, out) = self.quiet(&["state", &self.id]);
        (code == 0).then(|| OJson::parse(&out)).flatten()
    }

    /// The container's init pid from `state` (also remembered for normalising, and its
    /// cgroups for the leftovers check).
    pub fn pid(&mut self) -> Option<u32> {
        let pid = match self.state()?.get(&["pid"])? {
            OJson::Num(n) => n.parse::<u32>().ok()?,
            _ => return None,
        };
        if pid == 0 {
            return None;
        }
        self.norm.pid(pid);
        if self.cgroups.is_empty() {
            self.cgroups = observe::cgroup_dirs_of(pid);
        }
        Some(pid)
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        for (_, (mut child, _, _)) in self.background.drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let id = self.id.clone();
        let _ = self.quiet(&["delete", "--force", &id]);
        for c in self.cleanups.drain(..) {
            c();
        }
    }
}

/// Waits for a child until the deadline; kills it (it is ours) and returns None after.
fn wait_deadline(mut child: Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

fn exit_text(s: Option<ExitStatus>, timeout: Duration) -> String {
    match s {
        None => format!("still running after {}s (killed)", timeout.as_secs()),
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => "unknown".into(),
        },
    }
}

/// Replaces `{id}`, `{bundle}`, `{dir}` in every string of the config.
fn expand_config(v: &mut Value, ctx: &Ctx) {
    match v {
        Value::String(s) => *s = ctx.expand(s),
        Value::Array(a) => a.iter_mut().for_each(|x| expand_config(x, ctx)),
        Value::Object(o) => o.values_mut().for_each(|x| expand_config(x, ctx)),
        _ => {}
    }
}

fn apply_edit(ctx: &mut Ctx, edit: &Edit) -> anyhow::Result<()> {
    match edit {
        Edit::Set(p, v) => match ctx.bundle.config.pointer_mut(p) {
            // An existing value (array elements included) is replaced in place.
            Some(slot) => {
                *slot = v.clone();
                ctx.bundle.write();
            }
            None => {
                ctx.bundle.set(p, v.clone());
            }
        },
        Edit::Push(p, v) => {
            if ctx.bundle.config.pointer(p).is_none() {
                ctx.bundle.set(p, Value::Array(Vec::new()));
            }
            ctx.bundle.push(p, v.clone());
        }
        Edit::Remove(p) => {
            ctx.bundle.remove(p);
        }
        Edit::Func(f) => {
            let dir = ctx.dir.path().to_path_buf();
            let id = ctx.id.clone();
            let mut setup = Setup {
                bundle: &mut ctx.bundle,
                dir: &dir,
                id: &id,
                cleanups: &mut ctx.cleanups,
            };
            f(&mut setup)?;
        }
    }
    Ok(())
}

/// Runs of [`run_row`] in this process so far: part of every container id, because the
/// state roots are private but the default cgroup (`/<id>`) is not, and two tests of one
/// process (the matrix and its controls) run rows with the same index and side at once.
static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Runs `row` on `side`; `n` and the process-wide run count make the container id unique.
/// The observations in order.
pub fn run_row(row: &Row, side: &Side, n: usize) -> anyhow::Result<Vec<Observation>> {
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("mx{n:03}{}{}-{run}", side.tag, std::process::id());
    let mut ctx = Ctx::new(side.bin.clone(), id)?;
    // JSON edits first, then placeholders, then code edits (which see real paths and may
    // replace config.json wholesale).
    let edits: Vec<&Edit> = row.edits.iter().chain(side.extra.iter()).collect();
    for edit in edits.iter().filter(|e| !matches!(e, Edit::Func(_))) {
        apply_edit(&mut ctx, edit).with_context(|| format!("row {}: bundle edit", row.name))?;
    }
    let mut config = ctx.bundle.config.clone();
    expand_config(&mut config, &ctx);
    ctx.bundle.config = config;
    ctx.bundle.write();
    for edit in edits.iter().filter(|e| matches!(e, Edit::Func(_))) {
        apply_edit(&mut ctx, edit).with_context(|| format!("row {}: bundle edit", row.name))?;
    }

    let mut obs = Vec::new();
    for (i, step) in row.steps.iter().enumerate() {
        match step {
            Step::Cli(c) => cli_step(&mut ctx, i, c, &mut obs)?,
            Step::Wait(status) => {
                let got = wait_status(&mut ctx, status);
                obs.push((format!("#{i} wait {status}"), got));
            }
            Step::Observe(o) => {
                let v = observe::collect(&mut ctx, o);
                obs.push((format!("#{i} {o:?}"), v));
            }
            Step::Host(label, f) => {
                let v = f(&mut ctx).unwrap_or_else(|e| format!("host step failed: {e:#}"));
                obs.push((format!("#{i} {label}"), ctx.norm.text(&v)));
            }
            Step::Reap(j) => {
                let Some((child, started, timeout)) = ctx.background.remove(j) else {
                    return Err(anyhow!(
                        "step {i} reaps step {j}, which is not in the background"
                    ));
                };
                let left = timeout.saturating_sub(started.elapsed());
                let status = wait_deadline(child, left);
                let Some(Step::Cli(c)) = row.steps.get(*j) else {
                    return Err(anyhow!("step {j} is not a CLI step"));
                };
                outputs(&ctx, *j, c, exit_text(status, timeout), &mut obs);
            }
        }
    }
    Ok(obs)
}

fn wait_status(ctx: &mut Ctx, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = ctx.state();
        let status = state.as_ref().and_then(|s| match s.get(&["status"]) {
            Some(OJson::Str(st)) => Some(st.clone()),
            _ => None,
        });
        match (status.as_deref(), want) {
            (None, "gone") => return "reached".into(),
            (Some(s), w) if s == w => {
                let _ = ctx.pid();
                return "reached".into();
            }
            // Steps before a wait are synchronous: a container that does not exist will
            // not appear, and a stopped one will not run again.
            (None, _) => return "no container".into(),
            (Some("stopped"), "running" | "created" | "paused") => return "stopped instead".into(),
            _ => {}
        }
        if Instant::now() > deadline {
            return format!(
                "not within 20s; last: {}",
                status.unwrap_or_else(|| "no state".into())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn label(i: usize, c: &Cli) -> String {
    let mut l = format!("#{i} {}", c.args.join(" "));
    if c.tty {
        l.push_str(" (in a terminal)");
    }
    l
}

fn out_path(ctx: &Ctx, i: usize, stream: &str) -> PathBuf {
    ctx.dir.path().join(format!(".step{i}.{stream}"))
}

fn cli_step(ctx: &mut Ctx, i: usize, c: &Cli, obs: &mut Vec<Observation>) -> anyhow::Result<()> {
    let args: Vec<String> = c.args.iter().map(|a| ctx.expand(a)).collect();
    let mut cmd = if c.tty {
        let mut words = vec![
            quote(&ctx.bin.to_string_lossy()),
            "--root".into(),
            quote(&ctx.root.path().to_string_lossy()),
        ];
        words.extend(args.iter().map(|a| quote(a)));
        let line = format!("stty rows 33 cols 77; exec {}", words.join(" "));
        let mut s = Command::new("script");
        s.args(["-qec", &line, "/dev/null"]);
        s.current_dir(ctx.bundle.path());
        s
    } else {
        let mut cmd = ctx.command();
        cmd.args(&args);
        cmd
    };
    for (k, v) in &c.env {
        cmd.env(k, ctx.expand(v));
    }
    cmd.stdin(File::open("/dev/null")?);
    match c.stdout {
        Stdout::Capture => {
            cmd.stdout(File::create(out_path(ctx, i, "out"))?);
        }
        Stdout::DevNull => {
            cmd.stdout(std::fs::OpenOptions::new().write(true).open("/dev/null")?);
        }
        Stdout::BrokenPipe => {
            let (r, w) = nix::unistd::pipe()?;
            drop(r);
            cmd.stdout(File::from(w));
        }
    }
    cmd.stderr(File::create(out_path(ctx, i, "err"))?);
    let child = cmd
        .spawn()
        .with_context(|| format!("spawning {:?}", ctx.bin))?;
    if c.background {
        ctx.background.insert(i, (child, Instant::now(), c.timeout));
        obs.push((label(i, c), "started in the background".into()));
        return Ok(());
    }
    let status = wait_deadline(child, c.timeout);
    outputs(ctx, i, c, exit_text(status, c.timeout), obs);
    // Learn the new container's pid while it exists (normalising, leftovers).
    if c.args
        .iter()
        .any(|a| a == "create" || a == "-d" || a == "--detach")
    {
        let _ = ctx.pid();
    }
    Ok(())
}

fn outputs(ctx: &Ctx, i: usize, c: &Cli, exit: String, obs: &mut Vec<Observation>) {
    let l = label(i, c);
    obs.push((format!("{l} · exit"), exit));
    // In a terminal, script(1) echoes the EOF of its /dev/null stdin as "^@" at a moment
    // that depends on scheduling: harness noise, not the runtime's output.
    let read = |s: &str| {
        let t = std::fs::read_to_string(out_path(ctx, i, s)).unwrap_or_default();
        if c.tty {
            t.replace("^@", "")
        } else {
            t
        }
    };
    if c.stdout == Stdout::Capture {
        if let Some(v) = ctx.norm.classify(&c.out, &read("out")) {
            obs.push((format!("{l} · stdout"), v));
        }
    }
    let err = read("err");
    // The shape of diagnostics (runc's logrus lines) is its own observation, so a row's
    // other differences are not hidden behind it (see `report::judge`).
    if let Class::Phrase(_) = c.err {
        if let Some(v) = ctx.norm.classify(&Class::Shape, &err) {
            obs.push((format!("{l} {SHAPE}"), v));
        }
    }
    if let Some(v) = ctx.norm.classify(&c.err, &err) {
        let label = if matches!(c.err, Class::Shape) {
            format!("{l} {SHAPE}")
        } else {
            format!("{l} · stderr")
        };
        obs.push((label, v));
    }
}

/// The stdout of an earlier step, read again now.
pub fn step_output(ctx: &Ctx, i: usize, class: &Class) -> String {
    let raw = std::fs::read_to_string(out_path(ctx, i, "out")).unwrap_or_default();
    ctx.norm.classify(class, &raw).unwrap_or_default()
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
