//! Image references as docker users write them (`busybox`, `host:port/repo:tag`,
//! `repo@sha256:…`), normalized the way docker does (`docker.io/library/busybox:latest`).
//! The normalized string is also the image's name in the store (its `ref.name` tag).

use std::str::FromStr;

pub use oci_spec::distribution::Reference;

#[derive(Debug, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    pub input: String,
    pub reason: String,
}

/// Parses and normalizes a reference: a missing registry is docker.io, a one-part
/// docker.io repository gets `library/`, a missing tag (without a digest) is `latest`.
pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
    let err = |reason: String| ReferenceError {
        input: input.to_string(),
        reason,
    };
    if input.is_empty() {
        return Err(err("empty".into()));
    }
    Reference::from_str(input).map_err(|e| err(e.to_string()))
}

/// The name an image is stored under: the whole normalized reference.
pub fn store_name(reference: &Reference) -> String {
    reference.whole()
}

/// The store name `input` normalizes to, by docker's rules, for the plain forms
/// (`name`, `org/name:tag`, `host:port/name`) without validating them: a cheap lookup key
/// for names that were validated when they were stored. None for digests.
pub fn quick_store_name(input: &str) -> Option<String> {
    if input.contains('@') || input.is_empty() {
        return None;
    }
    let (first, rest) = match input.split_once('/') {
        Some((f, r)) => (f, Some(r)),
        None => (input, None),
    };
    let has_domain = rest.is_some()
        && (first.contains('.')
            || first.contains(':')
            || first == "localhost"
            || first.bytes().any(|b| b.is_ascii_uppercase()));
    let mut name = match (has_domain, rest) {
        (true, _) => input.to_string(),
        (false, None) => format!("docker.io/library/{input}"),
        (false, Some(_)) => format!("docker.io/{input}"),
    };
    let last = name.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') {
        name.push_str(":latest");
    }
    Some(name)
}

/// The last path component of a stored name's repository (`busybox` for
/// `docker.io/library/busybox:latest`).
pub fn short_name(stored: &str) -> &str {
    let repo = stored.split('@').next().unwrap_or(stored);
    let last = repo.rsplit('/').next().unwrap_or(repo);
    last.split(':').next().unwrap_or(last)
}

/// The name as docker prints it in listings: repository without `docker.io/library/`.
pub fn familiar_repository(reference: &Reference) -> String {
    let repo = reference.repository();
    if reference.registry() == "docker.io" {
        repo.strip_prefix("library/").unwrap_or(repo).to_string()
    } else {
        format!("{}/{}", reference.registry(), repo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_normalization() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("user/app", "docker.io/user/app:latest"),
            ("127.0.0.1:5000/repo/x:v1", "127.0.0.1:5000/repo/x:v1"),
            ("localhost/hello", "localhost/hello:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(store_name(&parse(input).unwrap()), want, "{input}");
        }
        for (input, want) in cases {
            assert_eq!(quick_store_name(input).unwrap(), want, "{input}");
        }
        assert_eq!(short_name("127.0.0.1:5000/a/b:1"), "b");
        let d = "sha256:".to_string() + &"a".repeat(64);
        let r = parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.digest(), Some(d.as_str()));
        assert_eq!(familiar_repository(&r), "busybox");
        assert!(parse("").is_err());
        assert!(parse("Busybox").is_err());
        assert!(parse("busybox:bad tag").is_err());
    }
}
