//! Running a command and measuring its peak memory, for tests that bound what a hostile
//! input can make imgtool hold. The peak is the child's own `VmHWM` (from
//! /proc/PID/status, sampled every few milliseconds until it exits): `ru_maxrss` would
//! not do, as it keeps the high-water mark of the test process the child was forked from.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `Command::output`, plus the child's peak resident set size in KiB.
pub trait PeakRss {
    fn output_with_peak_rss(&mut self) -> (Output, u64);
}

fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

impl PeakRss for Command {
    fn output_with_peak_rss(&mut self) -> (Output, u64) {
        let child = self
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let pid = child.id();
        let peak = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, done) = (peak.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    if let Some(kib) = vm_hwm(pid) {
                        peak.fetch_max(kib, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        let output = child.wait_with_output().expect("wait");
        done.store(true, Ordering::SeqCst);
        sampler.join().expect("sampler");
        (output, peak.load(Ordering::SeqCst))
    }
}
