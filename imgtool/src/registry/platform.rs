//! Platforms (`os/arch[/variant]`) and choosing one image out of an image index or
//! docker manifest list (image-spec image-index.md).

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Descriptor, Platform};

use super::RegistryError;

/// A wanted platform, as given to `--platform`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl FromStr for PlatformSpec {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || RegistryError::BadPlatform(s.to_string());
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| ok(p)) {
            return Err(bad());
        }
        Ok(Self {
            os: parts[0].to_string(),
            architecture: normalize_arch(parts[1]).to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Go's architecture names (what images use) for common aliases.
fn normalize_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i686" => "386",
        other => other,
    }
}

impl PlatformSpec {
    /// The host's platform: linux and the architecture this binary was built for.
    pub fn host() -> Self {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Self {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(String::from),
        }
    }

    /// Whether an index entry's platform is this one. Without a wanted variant any variant
    /// matches; arm64 without a variant is v8.
    pub fn matches(&self, p: &Platform) -> bool {
        if p.os().to_string() != self.os || p.architecture().to_string() != self.architecture {
            return false;
        }
        let Some(want) = &self.variant else {
            return true;
        };
        let have = p
            .variant()
            .clone()
            .or_else(|| (self.architecture == "arm64").then(|| "v8".to_string()));
        have.as_deref() == Some(want.as_str())
    }

    /// The first manifest in `manifests` for this platform.
    pub fn select<'a>(&self, manifests: &'a [Descriptor]) -> Option<&'a Descriptor> {
        manifests
            .iter()
            .find(|d| d.platform().as_ref().is_some_and(|p| self.matches(p)))
    }
}

/// The platforms an index offers, for error messages.
pub fn available(manifests: &[Descriptor]) -> String {
    let list: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s = format!("{s}/{v}");
            }
            s
        })
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let p: PlatformSpec = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(
            "linux/x86_64".parse::<PlatformSpec>().unwrap().architecture,
            "amd64"
        );
        for bad in ["linux", "linux/", "/amd64", "Linux/amd64", "a/b/c/d", ""] {
            assert!(bad.parse::<PlatformSpec>().is_err(), "{bad}");
        }
        let idx: oci_spec::image::ImageIndex = serde_json::from_str(
            r#"{"schemaVersion":2,"manifests":[
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
               "digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111",
               "platform":{"os":"linux","architecture":"amd64"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
               "digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222",
               "platform":{"os":"linux","architecture":"arm64"}}]}"#,
        )
        .unwrap();
        let m = idx.manifests();
        let pick = |s: &str| {
            s.parse::<PlatformSpec>()
                .unwrap()
                .select(m)
                .map(|d| d.digest().to_string())
        };
        assert!(pick("linux/amd64").unwrap().contains("1111"));
        assert!(pick("linux/arm64").unwrap().contains("2222"));
        assert!(pick("linux/arm64/v8").unwrap().contains("2222"));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(available(m), "linux/amd64, linux/arm64");
    }
}
