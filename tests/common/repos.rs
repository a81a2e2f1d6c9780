//! Real git repositories made from the fixture packs, and an exchange index pointing at them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn fixture_pack(name: &str) -> PathBuf {
    fixtures_dir().join("packs").join(name)
}

/// Runs git in `dir` and returns its trimmed stdout; panics with git's stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=st2pack tests",
            "-c",
            "user.email=tests@example.invalid",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "tag.gpgsign=false",
        ])
        .args(args)
        .output()
        .expect("git is installed");
    assert!(
        output.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Copies a fixture pack into `dest` (files keep their modes).
pub fn copy_fixture(name: &str, dest: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(fixture_pack(name))
        .arg(dest)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Makes `<root>/<name>` a git work tree of fixture pack `name`, with one commit per version:
/// the first version is the pack as shipped with its version set to `versions[0]`, and so on,
/// each tagged `v<version>`. Returns the path.
pub fn pack_repo(root: &Path, name: &str, versions: &[&str]) -> PathBuf {
    let repo = root.join(name);
    copy_fixture(name, &repo);
    git(&repo, &["init", "-q", "-b", "main"]);
    for version in versions {
        set_version(&repo, version);
        git(&repo, &["add", "-A"]);
        git(
            &repo,
            &["commit", "-q", "-m", &format!("release {version}")],
        );
        git(&repo, &["tag", &format!("v{version}")]);
    }
    repo
}

/// Rewrites the `version:` line of the pack.yaml in `dir`.
pub fn set_version(dir: &Path, version: &str) {
    let path = dir.join("pack.yaml");
    let text = fs::read_to_string(&path).unwrap();
    let updated: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with("version:") {
                format!("version: {version}")
            } else {
                line.to_string()
            }
        })
        .collect();
    fs::write(&path, updated.join("\n") + "\n").unwrap();
}

/// Makes a bare clone of `repo` at `<root>/<name>.git`, for serving.
pub fn bare_clone(repo: &Path, root: &Path, name: &str) -> PathBuf {
    let bare = root.join(format!("{name}.git"));
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            repo.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    bare
}

/// Writes an exchange index (format v1) listing `(name, repo_url, version)` to `path`.
pub fn write_index(path: &Path, packs: &[(&str, &str, &str)]) {
    let mut entries = serde_json::Map::new();
    for (name, url, version) in packs {
        entries.insert(
            name.to_string(),
            serde_json::json!({
                "name": name, "ref": name, "repo_url": url, "version": version,
                "versions": [version], "description": format!("{name} for tests"),
                "author": "st2pack tests", "email": "tests@example.invalid",
                "python_versions": ["3"], "content": {}
            }),
        );
    }
    let index =
        serde_json::json!({"metadata": {"generated_ts": 0, "hash": "test"}, "packs": entries});
    fs::write(path, serde_json::to_vec_pretty(&index).unwrap()).unwrap();
}
