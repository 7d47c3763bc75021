//! docker's resource options mapped to `linux.resources`: `--memory` (limit, and swap
//! twice the limit as docker sets it), `--cpus` (CFS quota over a 100 ms period),
//! `--pids-limit`; and the device rule every bundle carries, runc's deny-all
//! (`{"allow": false, "access": "rwm"}`): the runtime then allows only its default
//! devices (null, zero, full, random, urandom, tty, ptmx, pts, console) and the config's
//! own rules, so a host device node made inside the container cannot be opened.

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
    LinuxResources, Spec,
};

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("--memory {0:?}: expected a size such as 512m or 1g (b, k, m, g)")]
    BadMemory(String),
    #[error("--memory {0:?}: the minimum is 6m, as in docker")]
    MemoryTooSmall(String),
    #[error("--cpus {value:?}: expected a number from 0.01 to {max} (the CPUs of this machine)")]
    BadCpus { value: String, max: usize },
    #[error("--pids-limit {0:?}: expected a number (0 or -1 for no limit)")]
    BadPids(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceOptions {
    /// Bytes.
    pub memory: Option<i64>,
    /// CPUs, as a fraction.
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
}

/// The CFS period docker uses for `--cpus`.
const CPU_PERIOD: u64 = 100_000;

/// Parses docker's memory sizes: a number with an optional unit b, k, m, g (any case,
/// optionally followed by b: `512m`, `1GB`), in powers of 1024.
pub fn parse_memory(text: &str) -> Result<i64, ResourceError> {
    let bad = || ResourceError::BadMemory(text.to_string());
    let lower = text.trim().to_ascii_lowercase();
    // "1gb" is "1g"; a bare "b" is bytes.
    let t = match lower.strip_suffix('b') {
        Some(rest) if rest.ends_with(['k', 'm', 'g', 't']) => rest,
        _ => lower.as_str(),
    };
    let (num, mult): (&str, i64) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        Some((i, 't')) => (&t[..i], 1 << 40),
        Some((i, 'b')) => (&t[..i], 1),
        _ => (t, 1),
    };
    let value: f64 = num.parse().map_err(|_| bad())?;
    if !value.is_finite() || value <= 0.0 {
        return Err(bad());
    }
    let bytes = value * mult as f64;
    if bytes > i64::MAX as f64 {
        return Err(bad());
    }
    let bytes = bytes as i64;
    if bytes < 6 << 20 {
        return Err(ResourceError::MemoryTooSmall(text.to_string()));
    }
    Ok(bytes)
}

fn host_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub fn parse_cpus(text: &str) -> Result<f64, ResourceError> {
    let max = host_cpus();
    let bad = || ResourceError::BadCpus {
        value: text.to_string(),
        max,
    };
    let v: f64 = text.trim().parse().map_err(|_| bad())?;
    if !v.is_finite() || v < 0.01 || v > max as f64 {
        return Err(bad());
    }
    Ok(v)
}

pub fn parse_pids(text: &str) -> Result<i64, ResourceError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= -1)
        .ok_or_else(|| ResourceError::BadPids(text.to_string()))
}

/// Writes the limits and the deny-all device rule into `spec`.
pub fn apply(spec: &mut Spec, opts: &ResourceOptions) {
    let Some(linux) = spec.linux_mut() else {
        return;
    };
    let mut res: LinuxResources = linux.resources().clone().unwrap_or_default();
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .expect("a device rule is always valid");
    let mut devices = vec![deny_all];
    devices.extend(
        res.devices()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d.allow()),
    );
    res.set_devices(Some(devices));
    if let Some(limit) = opts.memory {
        res.set_memory(Some(
            LinuxMemoryBuilder::default()
                .limit(limit)
                .swap(limit.saturating_mul(2))
                .build()
                .expect("a memory limit is always valid"),
        ));
    }
    if let Some(cpus) = opts.cpus {
        res.set_cpu(Some(
            LinuxCpuBuilder::default()
                .period(CPU_PERIOD)
                .quota((cpus * CPU_PERIOD as f64).round() as i64)
                .build()
                .expect("a cpu quota is always valid"),
        ));
    }
    // docker: 0 and -1 mean no limit.
    if let Some(n) = opts.pids_limit.filter(|n| *n > 0) {
        res.set_pids(Some(
            LinuxPidsBuilder::default()
                .limit(n)
                .build()
                .expect("a pids limit is always valid"),
        ));
    }
    linux.set_resources(Some(res));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_as_docker_reads_them() {
        assert_eq!(parse_memory("512m").unwrap(), 512 << 20);
        assert_eq!(parse_memory("1G").unwrap(), 1 << 30);
        assert_eq!(parse_memory("1gb").unwrap(), 1 << 30);
        assert_eq!(parse_memory("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_memory("7340032").unwrap(), 7 << 20);
        assert!(matches!(
            parse_memory("1m"),
            Err(ResourceError::MemoryTooSmall(_))
        ));
        for bad in ["", "m", "-5m", "12x", "1e400"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpus_and_pids() {
        assert_eq!(parse_cpus("0.5").unwrap(), 0.5);
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("100000").is_err());
        assert!(parse_cpus("x").is_err());
        assert_eq!(parse_pids("100").unwrap(), 100);
        assert_eq!(parse_pids("-1").unwrap(), -1);
        assert!(parse_pids("-2").is_err());
    }

    #[test]
    fn resources_in_the_config() {
        let mut spec = Spec::default();
        apply(
            &mut spec,
            &ResourceOptions {
                memory: Some(64 << 20),
                cpus: Some(0.5),
                pids_limit: Some(50),
            },
        );
        let v = serde_json::to_value(&spec).unwrap();
        let r = &v["linux"]["resources"];
        assert_eq!(
            r["devices"],
            serde_json::json!([{"allow": false, "access": "rwm"}])
        );
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["memory"]["swap"], 128 << 20);
        assert_eq!(
            (r["cpu"]["quota"].as_i64(), r["cpu"]["period"].as_u64()),
            (Some(50_000), Some(100_000))
        );
        assert_eq!(r["pids"]["limit"], 50);
        // Unlimited pids and no options: only the device rule.
        let mut spec = Spec::default();
        apply(
            &mut spec,
            &ResourceOptions {
                pids_limit: Some(-1),
                ..Default::default()
            },
        );
        let v = serde_json::to_value(&spec).unwrap();
        assert!(v["linux"]["resources"].get("pids").is_none());
    }
}
