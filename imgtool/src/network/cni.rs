//! Running CNI plugins (containernetworking.org spec 1.0.0) as a container runtime does:
//! a network configuration list is applied plugin by plugin on ADD, each plugin getting
//! the previous one's result as `prevResult`, and undone in reverse order on DEL with
//! the cached ADD result. The plugins are the executables of Debian's
//! `containernetworking-plugins`; this module only builds their input and reads their
//! output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The spec version our configurations are written in (plugins since 1.0 speak it).
pub const CNI_VERSION: &str = "1.0.0";

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("CNI plugin {plugin:?} not found in {searched} (install containernetworking-plugins)")]
    NotFound { plugin: String, searched: String },
    #[error("CNI plugin {plugin} {command}: {message}")]
    Failed {
        plugin: String,
        command: &'static str,
        message: String,
    },
}

/// A network configuration list: what CNI calls a "conflist".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkList {
    pub name: String,
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub plugins: Vec<Value>,
}

/// What identifies one attachment of a container to a network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// Passed to plugins that declare the matching capability (`portMappings`).
    #[serde(default)]
    pub runtime_config: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Del,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Add => "ADD",
            Op::Del => "DEL",
        }
    }
}

/// Finds and runs plugins from a search path.
#[derive(Debug, Clone)]
pub struct Plugins {
    pub path: Vec<PathBuf>,
}

impl Plugins {
    pub fn find(&self, plugin: &str) -> Result<PathBuf, CniError> {
        // A plugin type is a file name, never a path.
        if !plugin.contains('/') && !plugin.is_empty() {
            for dir in &self.path {
                let p = dir.join(plugin);
                if p.is_file() {
                    return Ok(p);
                }
            }
        }
        Err(CniError::NotFound {
            plugin: plugin.to_string(),
            searched: self
                .path
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
        })
    }

    /// Runs one plugin with its full configuration on stdin; returns its result (ADD) or
    /// None (DEL).
    pub fn exec(
        &self,
        op: Op,
        config: &Value,
        attachment: &Attachment,
        netns: Option<&Path>,
    ) -> Result<Option<Value>, CniError> {
        let plugin = config["type"].as_str().unwrap_or_default().to_string();
        let bin = self.find(&plugin)?;
        let failed = |message: String| CniError::Failed {
            plugin: plugin.clone(),
            command: op.name(),
            message,
        };
        let path_list = std::env::join_paths(&self.path).map_err(|e| failed(e.to_string()))?;
        let mut child = Command::new(&bin)
            .env_clear()
            .env("PATH", crate::network::TOOLS_PATH)
            .env("CNI_COMMAND", op.name())
            .env("CNI_CONTAINERID", &attachment.container_id)
            .env("CNI_NETNS", netns.map(Path::as_os_str).unwrap_or_default())
            .env("CNI_IFNAME", &attachment.ifname)
            .env("CNI_PATH", path_list)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("cannot run {}: {e}", bin.display())))?;
        let input = serde_json::to_vec(config).map_err(|e| failed(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A plugin that fails early may close stdin: its exit status tells why.
            let _ = stdin.write_all(&input);
        }
        let out = child
            .wait_with_output()
            .map_err(|e| failed(e.to_string()))?;
        if !out.status.success() {
            return Err(failed(error_message(&out.stdout, &out.stderr)));
        }
        if op == Op::Del {
            return Ok(None);
        }
        serde_json::from_slice(&out.stdout)
            .map(Some)
            .map_err(|e| failed(format!("unreadable result: {e}")))
    }
}

/// The message of a plugin's error: the spec's `{"code", "msg", "details"}` on stdout,
/// else what it wrote on stderr.
fn error_message(stdout: &[u8], stderr: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(stdout) {
        if let Some(msg) = v["msg"].as_str() {
            return match v["details"].as_str().filter(|d| !d.is_empty()) {
                Some(d) => format!("{msg} ({d})"),
                None => msg.to_string(),
            };
        }
    }
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.is_empty() {
        "failed without a message".to_string()
    } else {
        text.lines().collect::<Vec<_>>().join("; ")
    }
}

/// The configuration plugin `index` of `list` gets: its own keys plus the list's name
/// and version, the previous result, and the runtime config its capabilities ask for.
pub fn plugin_config(
    list: &NetworkList,
    index: usize,
    prev_result: Option<&Value>,
    attachment: &Attachment,
) -> Value {
    let mut conf = list.plugins[index].clone();
    conf["name"] = json!(list.name);
    conf["cniVersion"] = json!(list.cni_version);
    if let Some(prev) = prev_result {
        conf["prevResult"] = prev.clone();
    }
    let wanted: Vec<String> = conf["capabilities"]
        .as_object()
        .map(|caps| {
            caps.iter()
                .filter(|(_, on)| on.as_bool() == Some(true))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    let runtime: serde_json::Map<String, Value> = attachment
        .runtime_config
        .iter()
        .filter(|(k, _)| wanted.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !runtime.is_empty() {
        conf["runtimeConfig"] = Value::Object(runtime);
    }
    conf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> NetworkList {
        NetworkList {
            name: "n".into(),
            cni_version: CNI_VERSION.into(),
            plugins: vec![
                json!({"type": "bridge", "bridge": "b0"}),
                json!({"type": "portmap", "capabilities": {"portMappings": true}}),
            ],
        }
    }

    #[test]
    fn runtime_config_goes_only_to_plugins_that_ask() {
        let mut a = Attachment {
            container_id: "c".into(),
            ifname: "eth0".into(),
            runtime_config: Default::default(),
        };
        a.runtime_config
            .insert("portMappings".into(), json!([{"hostPort": 1}]));
        a.runtime_config.insert("bandwidth".into(), json!({}));
        let bridge = plugin_config(&list(), 0, None, &a);
        assert_eq!(bridge["name"], "n");
        assert_eq!(bridge["cniVersion"], CNI_VERSION);
        assert!(bridge.get("runtimeConfig").is_none());
        assert!(bridge.get("prevResult").is_none());
        let prev = json!({"ips": []});
        let portmap = plugin_config(&list(), 1, Some(&prev), &a);
        assert_eq!(portmap["prevResult"], prev);
        assert_eq!(
            portmap["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 1}]})
        );
    }

    #[test]
    fn plugin_errors_are_read_from_the_spec_shape() {
        assert_eq!(
            error_message(
                br#"{"code": 11, "msg": "no IP", "details": "range full"}"#,
                b""
            ),
            "no IP (range full)"
        );
        assert_eq!(
            error_message(b"", b"panic: x\nline 2\n"),
            "panic: x; line 2"
        );
        assert_eq!(error_message(b"", b""), "failed without a message");
    }

    #[test]
    fn a_plugin_type_is_never_a_path() {
        let p = Plugins {
            path: vec![PathBuf::from("/usr/lib/cni")],
        };
        assert!(matches!(
            p.find("../../bin/sh"),
            Err(CniError::NotFound { .. })
        ));
    }
}
