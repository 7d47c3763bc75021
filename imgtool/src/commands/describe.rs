//! What `images`, `inspect` and `history` say about an image, as docker says it: names
//! split into repository and tag, sizes of the unpacked layers, ages in words.

use anyhow::Result;
use imgtool::reference;
use imgtool::store::{LoadedImage, Store};

/// (repository, tag) as docker lists a stored name: `busybox`, `latest`; `<none>` for an
/// image pulled by digest or loaded without a name.
pub fn repo_tag(name: &str) -> (String, String) {
    if name.starts_with("sha256:") {
        return ("<none>".to_string(), "<none>".to_string());
    }
    match reference::parse(name) {
        Ok(r) => (
            reference::familiar_repository(&r),
            r.tag().unwrap_or("<none>").to_string(),
        ),
        Err(_) => ("<none>".to_string(), "<none>".to_string()),
    }
}

/// The size docker reports for each layer (its files' contents unpacked), bottom first;
/// read from what the pull recorded, or computed from the blob once.
pub fn layer_sizes(store: &Store, img: &LoadedImage) -> Result<Vec<u64>> {
    img.manifest
        .layers()
        .iter()
        .zip(img.diff_ids())
        .map(|(l, d)| Ok(store.verify_layer(l, d)?.size))
        .collect()
}

/// The image's size as `docker images` shows it: all its layers unpacked.
pub fn image_size(store: &Store, img: &LoadedImage) -> Result<u64> {
    Ok(layer_sizes(store, img)?.iter().sum())
}

/// "3 weeks ago", as docker says how long ago `created` (RFC 3339) was.
pub fn ago(created: Option<&str>) -> String {
    let Some(then) = created.and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok()) else {
        return "N/A".to_string();
    };
    let secs = (chrono::Utc::now() - then.with_timezone(&chrono::Utc)).num_seconds();
    format!("{} ago", human_duration(secs.max(0) as u64))
}

/// docker's units.HumanDuration.
fn human_duration(secs: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    let hours = secs / 3600;
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => plural(s, "second"),
        s if s / 60 == 1 => "About a minute".into(),
        s if s < 3600 => plural(s / 60, "minute"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => plural(hours, "hour"),
        _ if hours < 24 * 7 * 2 => plural(hours / 24, "day"),
        _ if hours < 24 * 30 * 2 => plural(hours / 24 / 7, "week"),
        _ if hours < 24 * 365 * 2 => plural(hours / 24 / 30, "month"),
        _ => plural(hours / 24 / 365, "year"),
    }
}

/// The first 12 hex digits of a digest, as docker shows IDs.
pub fn short_id(digest: &str) -> String {
    digest
        .strip_prefix("sha256:")
        .unwrap_or(digest)
        .chars()
        .take(12)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human_duration(30), "30 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(3600 * 5), "5 hours");
        assert_eq!(human_duration(3600 * 24 * 3), "3 days");
        assert_eq!(human_duration(3600 * 24 * 21), "3 weeks");
        assert_eq!(human_duration(3600 * 24 * 365 * 3), "3 years");
        assert_eq!(
            repo_tag("docker.io/library/busybox:latest"),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(repo_tag("sha256:abcd"), ("<none>".into(), "<none>".into()));
    }
}
