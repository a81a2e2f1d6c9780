//! The `st2.packs.images` entry for the stackstorm-k8s chart, pinned by digest.
//!
//! The chart renders `{{repository}}/{{name}}:{{tag}}`. Nodes do not notice a re-pushed tag, so
//! the tag carries the digest too (`1.2.0@sha256:…`): the reference stays readable and always
//! pulls exactly the image that was built.
//!
//! Nodes may pull the image by another name than the one it was pushed to: with the chart's
//! in-cluster registry, a build inside the cluster pushes to the registry's service
//! (`st2-docker-registry:5000/st2packs`) while nodes pull `localhost:5000/st2packs` through
//! kube-registry-proxy. `--pull-as` gives that name; the tag and digest stay the build's.

use thiserror::Error;

use crate::registry::Reference;

/// A `--pull-as` that is not a bare image name.
#[derive(Debug, Error)]
#[error(
    "--pull-as {input}: {reason}; give the image name as the nodes pull it, without tag or \
     digest (those are the build's), e.g. --pull-as localhost:5000/st2packs"
)]
pub struct PullAsError {
    input: String,
    reason: String,
}

/// Parses a `--pull-as` name: `[registry[:port]/]repository`, with no tag and no digest.
pub fn parse_pull_as(input: &str) -> Result<Reference, PullAsError> {
    let fail = |reason: String| PullAsError {
        input: input.to_string(),
        reason,
    };
    let last_segment = input.rsplit('/').next().unwrap_or(input);
    if input.contains('@') {
        return Err(fail("it carries a digest".into()));
    }
    if last_segment.contains(':') {
        return Err(fail("it carries a tag".into()));
    }
    Reference::parse(input).map_err(|e| fail(e.reason))
}

/// The image name (`registry/repository`, no tag) the values give the nodes: `pull_as` when
/// given, else where the image was pushed.
pub fn pulled_image_name(pushed: &Reference, pull_as: Option<&Reference>) -> String {
    let name = pull_as.unwrap_or(pushed);
    format!("{}/{}", name.registry(), name.repository())
}

/// The values snippet for one pushed image. `image` is `registry/path/name` (no tag).
pub fn packs_image_values(image: &str, tag: &str, digest: &str) -> String {
    let (repository, name) = image.rsplit_once('/').unwrap_or(("", image));
    format!(
        "st2:\n  packs:\n    images:\n      - repository: {}\n        name: {}\n        tag: {}\n        pullPolicy: IfNotPresent\n",
        yaml_string(repository),
        yaml_string(name),
        yaml_string(&format!("{tag}@{digest}")),
    )
}

/// A double-quoted YAML scalar (references hold `:` and `@`, which YAML would otherwise parse).
fn yaml_string(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_repository_and_name_and_pins_the_digest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let values = packs_image_values("127.0.0.1:5000/team/st2packs", "1.0.0", &digest);
        let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(&values).unwrap();
        let entry = &parsed["st2"]["packs"]["images"][0];
        assert_eq!(entry["repository"], "127.0.0.1:5000/team");
        assert_eq!(entry["name"], "st2packs");
        assert_eq!(entry["tag"].as_str().unwrap(), format!("1.0.0@{digest}"));
        assert_eq!(entry["pullPolicy"], "IfNotPresent");
    }

    #[test]
    fn the_pull_name_replaces_registry_and_repository_only() {
        let pushed = Reference::parse("st2-docker-registry:5000/st2packs:7").unwrap();
        let pull_as = parse_pull_as("localhost:5000/st2packs").unwrap();
        assert_eq!(
            pulled_image_name(&pushed, Some(&pull_as)),
            "localhost:5000/st2packs"
        );
        assert_eq!(
            pulled_image_name(&pushed, None),
            "st2-docker-registry:5000/st2packs"
        );
    }

    #[test]
    fn a_pull_name_with_a_tag_or_digest_is_refused_with_an_example() {
        for input in [
            "localhost:5000/st2packs:1.0",
            &format!("localhost:5000/st2packs@sha256:{}", "a".repeat(64)),
            "localhost:5000/",
        ] {
            let message = parse_pull_as(input).unwrap_err().to_string();
            assert!(message.contains(input), "{message}");
            assert!(message.contains("localhost:5000/st2packs"), "{message}");
        }
        assert!(parse_pull_as("[::1]:5000/team/st2packs").is_ok());
    }
}
