//! The `st2.packs.images` entry for the stackstorm-k8s chart, pinned by digest.
//!
//! The chart renders `{{repository}}/{{name}}:{{tag}}`. Nodes do not notice a re-pushed tag, so
//! the tag carries the digest too (`1.2.0@sha256:…`): the reference stays readable and always
//! pulls exactly the image that was built.

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
}
