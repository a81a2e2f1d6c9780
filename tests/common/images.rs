//! Images as the tests make and read them: a busybox base pushed by st2pack, skopeo and umoci
//! as the independent readers, the chart's copy step, and searches of unpacked trees.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use walkdir::WalkDir;

use super::registry::TestRegistry;
use super::run::{Run, Sandbox};

/// The stackstorm-k8s chart's init-container copy step, verbatim.
pub const CHART_COPY: &str = "/bin/cp -aR /opt/stackstorm/packs/. /opt/stackstorm/packs-shared && /bin/cp -aR /opt/stackstorm/virtualenvs/. /opt/stackstorm/virtualenvs-shared";

/// Pushes a busybox base made by `st2pack base-image` to `registry`; returns its reference.
pub fn push_busybox_base(sandbox: &Sandbox, registry: &TestRegistry) -> String {
    let base = format!("{}/st2/busybox:1", registry.host());
    let mut command = sandbox.command(env!("CARGO_BIN_EXE_st2pack"), &[]);
    command.args(["base-image", "--cache-dir"]);
    command.arg(sandbox.cache());
    command.args(["--tag", &base, "--push"]);
    Run::from(command.output().unwrap()).assert_ok();
    base
}

/// Runs skopeo, failing the test with its stderr if it fails; returns its stdout.
pub fn skopeo(args: &[&str]) -> String {
    let output = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed");
    assert!(
        output.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Unpacks the OCI image `layout` (`DIR:TAG`) with umoci into `work/bundle`; returns the root
/// filesystem.
pub fn umoci_unpack(layout: &str, work: &Path) -> PathBuf {
    let bundle = work.join("bundle");
    let output = Command::new("umoci")
        .args(["unpack", "--image", layout])
        .arg(&bundle)
        .output()
        .expect("umoci is installed");
    assert!(
        output.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    bundle.join("rootfs")
}

/// Copies the pushed image `reference` into an OCI layout with skopeo and unpacks it with umoci;
/// returns the root filesystem.
pub fn pull_and_unpack(reference: &str, work: &Path) -> PathBuf {
    fs::create_dir_all(work).unwrap();
    let layout = work.join("layout");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("oci:{}:unpacked", layout.display()),
    ]);
    umoci_unpack(&format!("{}:unpacked", layout.display()), work)
}

/// Every file under `dir` (symlinks not followed) that contains `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|entry| entry.file_type().is_file())
        .filter(|entry| {
            let bytes = fs::read(entry.path()).unwrap();
            bytes
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        })
        .map(|entry| entry.path().to_path_buf())
        .collect()
}
