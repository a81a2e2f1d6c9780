//! Names the build in `--version`: the git commit of the source and the target triple, so a
//! binary copied into an image or a CI runner can be traced back to what it was built from.
//!
//! A source tree without git metadata (a release tarball) builds too: the commit is `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=ST2PACK_BUILD_TARGET={target}");
    println!("cargo:rustc-env=ST2PACK_BUILD_COMMIT={}", commit());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ST2PACK_BUILD_COMMIT");
    // A new commit (or a checkout of another one) changes HEAD or the ref it points to.
    for path in ["HEAD", "packed-refs"]
        .into_iter()
        .chain(head_ref().as_deref())
    {
        if let Some(file) = git(&["rev-parse", "--git-path", path])
            && Path::new(&file).exists()
        {
            println!("cargo:rerun-if-changed={file}");
        }
    }
}

/// The commit: `$ST2PACK_BUILD_COMMIT` when set (a build from a tarball that knows its commit),
/// else git's short hash of HEAD, else `unknown`.
fn commit() -> String {
    if let Ok(commit) = std::env::var("ST2PACK_BUILD_COMMIT")
        && !commit.trim().is_empty()
    {
        return commit.trim().to_string();
    }
    git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
}

/// The branch ref HEAD points to (`refs/heads/main`), if HEAD is not detached.
fn head_ref() -> Option<String> {
    git(&["symbolic-ref", "-q", "HEAD"])
}

/// A git command's trimmed output, run in this crate's directory; `None` when git is missing,
/// fails, or the directory is not in a repository.
fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let output = Command::new("git")
        .args(args)
        .current_dir(&dir)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_string())
}
