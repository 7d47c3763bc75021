//! Signal names as runc accepts them: `KILL`, `SIGKILL`, `kill` and `9` all mean SIGKILL;
//! real-time signals go by number or `RTMIN+N`.

use std::str::FromStr;

use anyhow::{bail, Result};
use nix::sys::signal::Signal;

/// Parses a signal given on the command line into its number. 0 is accepted, as runc
/// accepts it: `kill ID 0` only checks that the container's init is alive.
pub fn parse_signal(text: &str) -> Result<i32> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        if n < 0 || n > libc::SIGRTMAX() {
            bail!("invalid signal number {n}");
        }
        return Ok(n);
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(off) = name.strip_prefix("RTMIN") {
        let n = libc::SIGRTMIN() + parse_offset(off, text)?;
        if n > libc::SIGRTMAX() {
            bail!("invalid signal {text:?}");
        }
        return Ok(n);
    }
    if let Some(off) = name.strip_prefix("RTMAX") {
        let n = libc::SIGRTMAX() - parse_offset(off, text)?.abs();
        return Ok(n);
    }
    match Signal::from_str(&format!("SIG{name}")) {
        Ok(sig) => Ok(sig as i32),
        Err(_) => bail!("unknown signal {text:?}"),
    }
}

fn parse_offset(off: &str, original: &str) -> Result<i32> {
    if off.is_empty() {
        return Ok(0);
    }
    off.parse::<i32>()
        .map_err(|_| anyhow::anyhow!("unknown signal {original:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_spellings_of_kill() {
        for s in ["KILL", "SIGKILL", "kill", "9"] {
            assert_eq!(parse_signal(s).unwrap(), 9, "{s}");
        }
        assert_eq!(parse_signal("TERM").unwrap(), 15);
        assert_eq!(parse_signal("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse_signal("NOPE").is_err());
        assert_eq!(parse_signal("0").unwrap(), 0);
        assert!(parse_signal("-1").is_err());
    }
}
