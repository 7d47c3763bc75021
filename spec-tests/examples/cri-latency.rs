//! Benchmark helper for hack/bench-runtime.sh (not a test): the latency kubelet sees to get
//! a pod's first container running, RunPodSandbox + CreateContainer + StartContainer through
//! containerd 1.6's CRI plugin, for several runtime handlers of one daemon, interleaved so
//! drift hits all alike. Pod removal is not timed. Writes hyperfine-shaped JSON
//! (`{"results":[{"command":NAME,"median":SECONDS,"times":[...]}]}`).
//!
//! usage: cri-latency RUNS OUT.json NAME=BINARY...

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use k8s_cri::v1::NamespaceMode;
use spec_tests::cri::{container_config, pod_config, CriContainerd};

const WARMUP: usize = 2;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [runs, out, handlers @ ..] = args.as_slice() else {
        bail!("usage: cri-latency RUNS OUT.json NAME=BINARY...");
    };
    let runs: usize = runs
        .parse()
        .with_context(|| format!("RUNS must be a number, not {runs:?}"))?;
    let handlers = handlers
        .iter()
        .map(|h| {
            h.split_once('=')
                .map(|(n, b)| (n.to_string(), PathBuf::from(b)))
                .with_context(|| format!("handler {h:?} is not NAME=BINARY"))
        })
        .collect::<Result<Vec<_>>>()?;
    if handlers.is_empty() {
        bail!("no NAME=BINARY handler given");
    }
    let refs: Vec<(&str, &std::path::Path)> = handlers
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_path()))
        .collect();
    let cri = CriContainerd::start(&refs).context("containerd is not installed")?;
    let image = cri.pull(&cri.busybox_image());

    let mut times: Vec<Vec<f64>> = vec![Vec::new(); handlers.len()];
    for i in 0..WARMUP + runs {
        for (h, (name, _)) in handlers.iter().enumerate() {
            let config = pod_config(
                &cri,
                &format!("bench-{name}-{i}"),
                NamespaceMode::Container,
                NamespaceMode::Pod,
            );
            let started = Instant::now();
            let pod = cri.run_pod(config, name);
            pod.start(container_config("c", &image, &["/bin/sleep", "inf"]));
            let took = started.elapsed().as_secs_f64();
            pod.remove();
            if i >= WARMUP {
                times[h].push(took);
            }
        }
    }

    let results: Vec<serde_json::Value> = handlers
        .iter()
        .zip(times)
        .map(|((name, _), mut t)| {
            t.sort_by(f64::total_cmp);
            let median = if t.len() % 2 == 1 {
                t[t.len() / 2]
            } else {
                (t[t.len() / 2 - 1] + t[t.len() / 2]) / 2.0
            };
            serde_json::json!({ "command": name, "median": median, "times": t })
        })
        .collect();
    std::fs::write(
        out,
        serde_json::to_string_pretty(&serde_json::json!({ "results": results }))?,
    )
    .with_context(|| format!("cannot write {out}"))?;
    Ok(())
}
