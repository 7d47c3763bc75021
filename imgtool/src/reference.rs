//! Image references as docker users write them (`busybox`, `host:port/repo:tag`,
//! `repo@sha256:…`), normalized the way docker does (`docker.io/library/busybox:latest`).
//! The normalized string is also the image's name in the store (its `ref.name` tag).

pub use oci_spec::distribution::Reference;

#[derive(Debug, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    pub input: String,
    pub reason: String,
}

/// Parses and normalizes a reference: a missing registry is docker.io, a one-part
/// docker.io repository gets `library/`, a missing tag (without a digest) is `latest`.
///
/// The grammar is distribution's (`reference/regexp.go`), checked by hand: oci-spec's own
/// parser compiles a large regular expression on first use, which cost more than the
/// whole of a `bundle`, `tag` or `commit`. The unit tests hold the two to the same answers.
pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
    let err = |reason: &str| ReferenceError {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    if input.is_empty() {
        return Err(err("empty"));
    }
    let (rest, digest) = match input.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (input, None),
    };
    // A tag follows the last ':' after the last '/' (a ':' before it is a port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        if !valid_tag(t) {
            return Err(err("invalid tag"));
        }
    }
    if let Some(d) = digest {
        check_digest(d).map_err(&err)?;
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, remainder))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first.to_string(), remainder.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    if domain != "docker.io" && !valid_domain(&domain) {
        return Err(err("invalid registry host"));
    }
    // The grammar allows any digits as a port; a port that cannot exist is refused here
    // rather than by the HTTP client later.
    if let Some(port) = port_of(&domain) {
        if !port.parse::<u16>().is_ok_and(|p| p > 0) {
            return Err(err(&format!(
                "invalid registry port {port} (a port is 1 to 65535)"
            )));
        }
    }
    if path.is_empty() || !path.split('/').all(valid_path_component) {
        return Err(err(
            "invalid repository name (lowercase letters, digits and . _ - separators)",
        ));
    }
    let domain = if domain == "index.docker.io" {
        "docker.io".to_string()
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    if path.len() > 255 {
        return Err(err("repository name longer than 255 characters"));
    }
    Ok(match (tag, digest) {
        (Some(t), Some(d)) => Reference::with_tag_and_digest(domain, path, t.into(), d.into()),
        (None, Some(d)) => Reference::with_digest(domain, path, d.into()),
        (t, None) => Reference::with_tag(domain, path, t.unwrap_or("latest").into()),
    })
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_lowercase() && !b[0].is_ascii_digit() {
        return false;
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host[:port]`: dot-separated labels of letters, digits and inner hyphens, or a
/// bracketed IPv6 address.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, tail)) => {
                if v6.is_empty() || !v6.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
                    return false;
                }
                ("", tail.strip_prefix(':'))
            }
            None => return false,
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    host.is_empty() && d.starts_with('[')
        || host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

/// The port of `host:port` or `[v6]:port`, if any.
fn port_of(domain: &str) -> Option<&str> {
    let tail = match domain.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.1,
        None => domain,
    };
    tail.rsplit_once(':').map(|(_, p)| p)
}

fn check_digest(d: &str) -> Result<(), &'static str> {
    let (alg, hex) = d.split_once(':').ok_or("invalid digest")?;
    let want = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err("unsupported digest algorithm"),
    };
    if hex.len() != want || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err("invalid digest length or characters");
    }
    Ok(())
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
    fn same_answers_as_the_regex_parser() {
        use std::str::FromStr;
        let f = "f".repeat(64);
        let cases = [
            "busybox".to_string(),
            "test.com:tag".into(),
            "test.com:5000".into(),
            "test.com/repo:tag".into(),
            "test:5000/repo".into(),
            "test:5000/repo:tag".into(),
            format!("test:5000/repo@sha256:{f}"),
            format!("test:5000/repo:tag@sha256:{f}"),
            "lowercase:Uppercase".into(),
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag".into(),
            "b.gcr.io/test.example.com/my-app:test.example.com".into(),
            "xn--n3h.com/myimage:xn--n3h.com".into(),
            "foo_bar.com:8080".into(),
            "foo/foo_bar.com:8080".into(),
            "opensuse/leap:15.3".into(),
            "127.0.0.1:5000/a/b__c/d-e--f:v1.2_3".into(),
            "localhost/x".into(),
            "index.docker.io/library/alpine".into(),
            "a.b/c".into(),
            // invalid
            ":justtag".into(),
            format!("@sha256:{f}"),
            "repo@sha256:ffff".into(),
            format!("validname@invaliddigest:{f}"),
            "Uppercase:tag".into(),
            "a/b:".into(),
            "a//b".into(),
            "a/b/".into(),
            "a-/b".into(),
            "-a/b".into(),
            "a/b:-tag".into(),
            "a..b/c".into(),
            "a/b c".into(),
            "repo:tag:tag".into(),
            "a/b@".into(),
        ];
        for c in cases {
            let ours = parse(&c)
                .ok()
                .map(|r| r.whole().replace("index.docker.io/", "docker.io/"));
            let theirs = Reference::from_str(&c)
                .ok()
                .map(|r| r.whole().replace("index.docker.io/", "docker.io/"));
            assert_eq!(ours, theirs, "{c}");
        }
        // Newer than oci-spec's grammar: a bracketed IPv6 registry, as docker accepts.
        assert_eq!(parse("[::1]:5000/repo:1").unwrap().registry(), "[::1]:5000");
        // Stricter: a port that cannot exist.
        for bad in ["127.0.0.1:99999/x", "host:0/x", "[::1]:65536/x"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid registry port"), "{bad}: {e}");
        }
        assert!(parse("host:65535/x").is_ok());
    }

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
