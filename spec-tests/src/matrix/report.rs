//! Running the table on both runtimes in parallel, comparing each row's observations,
//! and the summary: rows, agree, differ-by-design, awaiting an issue item, differ, not
//! run on this host.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::row::{Expect, Requires, Row};
use super::run::{run_row, Observation, Side, SHAPE};

/// How one row came out.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Agree,
    ByDesign(&'static str),
    Awaiting(&'static str),
    /// Marked awaiting, yet both agree: the marker can go.
    AwaitingButAgrees(&'static str),
    /// Marked by design, yet both agree: the documented reason is stale.
    ByDesignButAgrees(&'static str),
    Differ,
    NotRun(String),
    /// The harness could not run the row (a panic, a setup error).
    Broken(String),
}

/// One row's result: the verdict and the observations that differ (label, ref, cand).
pub struct RowResult {
    pub index: usize,
    pub section: &'static str,
    pub name: String,
    pub verdict: Verdict,
    pub diffs: Vec<(String, String, String)>,
    /// Both sides' observations (reference, candidate), when the row ran.
    pub observed: Option<(Vec<Observation>, Vec<Observation>)>,
    /// Wall time of the row (both sides at once).
    pub took: std::time::Duration,
}

/// What the host offers, for `Requires`.
pub fn host_has(r: Requires) -> Result<(), String> {
    let unified = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false);
    match r {
        Requires::Nothing => Ok(()),
        Requires::CgroupV2 if unified => Ok(()),
        Requires::CgroupV2 => Err("needs cgroup v2 controllers (host is cgroup v1/hybrid)".into()),
        Requires::CgroupV1 if !unified => Ok(()),
        Requires::CgroupV1 => Err("needs cgroup v1 hierarchies (host is cgroup v2)".into()),
    }
}

fn diff(a: &[Observation], b: &[Observation]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for i in 0..a.len().max(b.len()) {
        match (a.get(i), b.get(i)) {
            (Some((la, va)), Some((lb, vb))) if la == lb => {
                if va != vb {
                    out.push((la.clone(), va.clone(), vb.clone()));
                }
            }
            (x, y) => {
                let show = |o: Option<&Observation>| {
                    o.map(|(l, v)| format!("{l}: {v}"))
                        .unwrap_or_else(|| "<none>".into())
                };
                out.push((format!("observation {i}"), show(x), show(y)));
            }
        }
    }
    out
}

/// How the table is judged as a whole.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The two sides are the same runtime: every row must agree whatever its marker.
    pub same_runtime: bool,
    /// What a difference in stderr *shape* alone means (runc's `time=... level=... msg=...`
    /// lines against ours): one issue item covers it for every row, so it is said once
    /// for the table instead of on each error row.
    pub stderr_shape: Expect,
}

/// Runs one row on both sides (concurrently) and judges it.
pub fn judge(
    row: &Row,
    index: usize,
    reference: &Side,
    candidate: &Side,
    policy: &Policy,
) -> RowResult {
    let strict_same = policy.same_runtime;
    let mut result = RowResult {
        index,
        section: row.section,
        name: row.name.clone(),
        verdict: Verdict::Agree,
        diffs: Vec::new(),
        observed: None,
        took: std::time::Duration::ZERO,
    };
    let started = std::time::Instant::now();
    if let Err(why) = host_has(row.requires) {
        result.verdict = Verdict::NotRun(why);
        return result;
    }
    let run = |side: &Side| {
        std::panic::catch_unwind(AssertUnwindSafe(|| run_row(row, side, index)))
            .map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into())
            })
            .and_then(|r| r.map_err(|e| format!("{e:#}")))
    };
    let (a, b) = std::thread::scope(|s| {
        let ha = s.spawn(|| run(reference));
        let b = run(candidate);
        (
            ha.join()
                .unwrap_or_else(|_| Err("reference side panicked".into())),
            b,
        )
    });
    let (a, b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            result.verdict = Verdict::Broken(format!(
                "reference: {}; candidate: {}",
                a.err().unwrap_or_else(|| "ok".into()),
                b.err().unwrap_or_else(|| "ok".into())
            ));
            return result;
        }
    };
    result.diffs = diff(&a, &b);
    result.observed = Some((a, b));
    result.took = started.elapsed();
    let only_shape =
        !result.diffs.is_empty() && result.diffs.iter().all(|(l, _, _)| l.ends_with(SHAPE));
    if only_shape && !strict_same {
        // Only the shape of diagnostics differs: the table's shape expectation decides,
        // and a row marker for anything else is stale.
        result.verdict = match (&policy.stderr_shape, &row.expect) {
            (_, Expect::Awaiting(i)) if Expect::Awaiting(i) != policy.stderr_shape => {
                Verdict::AwaitingButAgrees(i)
            }
            (Expect::Awaiting(i), _) => Verdict::Awaiting(i),
            (Expect::ByDesign(r), _) => Verdict::ByDesign(r),
            (Expect::Agree, _) => Verdict::Differ,
        };
        return result;
    }
    let same = result.diffs.is_empty();
    result.verdict = match (&row.expect, same) {
        (_, true) if strict_same => Verdict::Agree,
        (_, false) if strict_same => Verdict::Differ,
        (Expect::Agree, true) => Verdict::Agree,
        (Expect::Agree, false) => Verdict::Differ,
        (Expect::ByDesign(r), false) => Verdict::ByDesign(r),
        (Expect::ByDesign(r), true) => Verdict::ByDesignButAgrees(r),
        (Expect::Awaiting(i), false) => Verdict::Awaiting(i),
        (Expect::Awaiting(i), true) => Verdict::AwaitingButAgrees(i),
    };
    result
}

/// Runs every row with `jobs` rows at a time (rows marked serial afterwards, alone).
pub fn run_all(
    rows: &[Row],
    reference: &Side,
    candidate: &Side,
    jobs: usize,
    policy: &Policy,
) -> Vec<RowResult> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let parallel: Vec<usize> = (0..rows.len()).filter(|i| !rows[*i].serial).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = parallel.get(k) else { break };
                let r = judge(&rows[i], i, reference, candidate, policy);
                results.lock().unwrap_or_else(|e| e.into_inner()).push(r);
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    for (i, row) in rows.iter().enumerate().filter(|(_, r)| r.serial) {
        results.push(judge(row, i, reference, candidate, policy));
    }
    results.sort_by_key(|r| r.index);
    results
}

/// Counts per verdict kind.
#[derive(Default, Debug)]
pub struct Summary {
    pub rows: usize,
    pub agree: usize,
    pub by_design: usize,
    pub awaiting: usize,
    pub stale_awaiting: usize,
    pub stale_by_design: usize,
    pub differ: usize,
    pub not_run: usize,
    pub broken: usize,
}

impl Summary {
    pub fn of(results: &[RowResult]) -> Self {
        let mut s = Summary {
            rows: results.len(),
            ..Default::default()
        };
        for r in results {
            match r.verdict {
                Verdict::Agree => s.agree += 1,
                Verdict::ByDesign(_) => s.by_design += 1,
                Verdict::Awaiting(_) => s.awaiting += 1,
                Verdict::AwaitingButAgrees(_) => s.stale_awaiting += 1,
                Verdict::ByDesignButAgrees(_) => s.stale_by_design += 1,
                Verdict::Differ => s.differ += 1,
                Verdict::NotRun(_) => s.not_run += 1,
                Verdict::Broken(_) => s.broken += 1,
            }
        }
        s
    }

    /// Whether the run fails: always on an unexplained difference, a broken row or a stale
    /// by-design reason; under `strict` also on awaiting markers (differing or stale).
    pub fn fails(&self, strict: bool) -> bool {
        self.differ + self.broken + self.stale_by_design > 0
            || (strict && self.awaiting + self.stale_awaiting > 0)
    }

    pub fn line(&self) -> String {
        format!(
            "matrix: {} rows: {} agree, {} differ-by-design, {} awaiting a fix, {} differ, {} not run on this host, {} broken; {} awaiting markers and {} by-design reasons are stale",
            self.rows, self.agree, self.by_design, self.awaiting, self.differ, self.not_run, self.broken, self.stale_awaiting, self.stale_by_design
        )
    }
}

fn clip(s: &str) -> String {
    const MAX: usize = 1200;
    if s.len() <= MAX {
        s.to_string()
    } else {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &s[..end], s.len())
    }
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("          {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn write_diffs(out: &mut String, r: &RowResult, names: (&str, &str)) {
    for (label, a, b) in &r.diffs {
        let _ = writeln!(
            out,
            "      {label}\n        {}:\n{}\n        {}:\n{}",
            names.0,
            indent(&clip(a)),
            names.1,
            indent(&clip(b))
        );
    }
}

/// The printed report: every row's verdict by section, then the details of every row that
/// does not simply agree, awaiting rows grouped by issue item.
/// `verbose` prints every observation of both sides under each row.
pub fn render(results: &[RowResult], names: (&str, &str), verbose: bool) -> String {
    let mut out = String::new();
    let mut section = "";
    for r in results {
        if r.section != section {
            section = r.section;
            let _ = writeln!(out, "== {section}");
        }
        let v = match &r.verdict {
            Verdict::Agree => "agree".to_string(),
            Verdict::ByDesign(_) => "differ-by-design".into(),
            Verdict::Awaiting(i) => format!("awaiting {i}"),
            Verdict::AwaitingButAgrees(i) => format!("AGREES (remove awaiting {i})"),
            Verdict::ByDesignButAgrees(_) => "AGREES (by-design reason stale)".into(),
            Verdict::Differ => "DIFFER".into(),
            Verdict::NotRun(why) => format!("not run: {why}"),
            Verdict::Broken(_) => "BROKEN".into(),
        };
        let _ = writeln!(out, "  [{:3}] {:<24} {}", r.index, v, r.name);
        if verbose {
            if let Some((a, b)) = &r.observed {
                for ((l, va), (_, vb)) in a.iter().zip(b.iter()) {
                    let _ = writeln!(
                        out,
                        "        {l}\n          {}: {}\n          {}: {}",
                        names.0,
                        clip(va).replace('\n', "\n            "),
                        names.1,
                        clip(vb).replace('\n', "\n            ")
                    );
                }
            }
        }
    }
    let bad: Vec<&RowResult> = results
        .iter()
        .filter(|r| {
            matches!(
                r.verdict,
                Verdict::Differ | Verdict::Broken(_) | Verdict::ByDesignButAgrees(_)
            )
        })
        .collect();
    if !bad.is_empty() {
        let _ = writeln!(out, "\n== unexplained differences (fail)");
        for r in bad {
            let _ = writeln!(out, "  [{}] {}", r.index, r.name);
            if let Verdict::Broken(why) = &r.verdict {
                let _ = writeln!(out, "      harness: {why}");
            }
            write_diffs(&mut out, r, names);
        }
    }
    let mut by_item: BTreeMap<&str, Vec<&RowResult>> = BTreeMap::new();
    for r in results {
        if let Verdict::Awaiting(i) | Verdict::AwaitingButAgrees(i) = r.verdict {
            by_item.entry(i).or_default().push(r);
        }
    }
    if !by_item.is_empty() {
        let _ = writeln!(out, "\n== awaiting fixes (fail under MATRIX_STRICT=1)");
        for (item, rows) in by_item {
            let _ = writeln!(out, "  -- {item}");
            for r in rows {
                let stale = matches!(r.verdict, Verdict::AwaitingButAgrees(_));
                let _ = writeln!(
                    out,
                    "    [{}] {}{}",
                    r.index,
                    r.name,
                    if stale {
                        " — now agrees: remove the marker"
                    } else {
                        ""
                    }
                );
                write_diffs(&mut out, r, names);
            }
        }
    }
    let mut slow: Vec<&RowResult> = results.iter().collect();
    slow.sort_by_key(|r| std::cmp::Reverse(r.took));
    let _ = writeln!(out, "\n== slowest rows");
    for r in slow.iter().take(5) {
        let _ = writeln!(
            out,
            "  [{}] {:.1} s {}",
            r.index,
            r.took.as_secs_f64(),
            r.name
        );
    }
    let designed: Vec<&RowResult> = results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::ByDesign(_)))
        .collect();
    if !designed.is_empty() {
        let _ = writeln!(out, "\n== differ by design (docs/runtime.md)");
        for r in designed {
            if let Verdict::ByDesign(why) = r.verdict {
                let _ = writeln!(out, "  [{}] {}: {why}", r.index, r.name);
            }
        }
    }
    out
}
