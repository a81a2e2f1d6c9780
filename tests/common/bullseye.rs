//! The stand-in for the cluster's runtime: a Debian bullseye root (CPython 3.9 at
//! `/usr/bin/python3.9`, glibc 2.31 as Ubuntu focal's), made once outside the test run by
//! `scripts/bullseye-root.sh`, and entered with chroot through an overlay so that it stays
//! untouched.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The shared root (`$ST2PACK_BULLSEYE_ROOT`, default `/var/cache/st2pack-ci/bullseye`).
pub fn root() -> PathBuf {
    let root = std::env::var_os("ST2PACK_BULLSEYE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/st2pack-ci/bullseye"));
    assert!(
        root.join("usr/bin/python3.9").exists(),
        "{}: no Debian bullseye root with python3.9 there. Make it once (as root): \
         bash scripts/bullseye-root.sh",
        root.display()
    );
    root
}

/// Runs `script` with `/bin/sh` inside the bullseye root seen through an overlay whose upper
/// directory is `upper` (its files appear at the same paths inside; what the script writes
/// lands there), with /proc mounted, in a private mount namespace that disappears with the
/// test's processes, and a clean environment.
pub fn run(upper: &Path, script: &str) -> Output {
    let lower = root();
    let work = upper.with_extension("work");
    let merged = upper.with_extension("merged");
    for dir in [upper, &work, &merged] {
        fs::create_dir_all(dir).unwrap();
    }
    let outer = r#"mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4"
mount -t proc proc "$4/proc"
exec chroot "$4" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
  PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin /bin/sh -ec "$5""#;
    Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-ec",
            outer,
            "sh",
        ])
        .args([&lower, upper, &work, &merged])
        .arg(script)
        .output()
        .expect("unshare (util-linux) is installed")
}
