//! Runtime images for `--runtime-image`: the bullseye root (see `bullseye`) as an OCI image,
//! and an "st2-like" image on top of it (a second layer with `/opt/stackstorm/st2`, a
//! virtualenv made by bullseye's own python3.9 with `--copies` as st2's is, and a
//! `st2common/__init__.py` saying 3.9.0).
//!
//! Both live in one OCI layout (tags [`BULLSEYE`] and [`ST2`]) made once with umoci beside the
//! bullseye root and kept there: the root is 260 MB and is never copied, umoci reads it in
//! place. Tests running at once make it once: under a file lock, in a staging directory
//! renamed into place.

#![allow(dead_code)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::bullseye;
use super::registry::TestRegistry;

/// The tag of the plain bullseye image.
pub const BULLSEYE: &str = "bullseye";
/// The tag of the st2-like image.
pub const ST2: &str = "st2";
/// st2's site-packages in the st2-like image.
pub const ST2_SITE_PACKAGES: &str = "/opt/stackstorm/st2/lib/python3.9/site-packages";

/// The layout (`$ST2PACK_BULLSEYE_OCI`, default `bullseye-oci` beside the bullseye root), made
/// on first use.
pub fn layout() -> PathBuf {
    let root = bullseye::root();
    let layout = std::env::var_os("ST2PACK_BULLSEYE_OCI")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.with_file_name("bullseye-oci"));
    if layout.join("index.json").is_file() {
        return layout;
    }
    let parent = layout.parent().unwrap();
    fs::create_dir_all(parent).unwrap();
    let lock = File::create(parent.join(".bullseye-oci.lock")).unwrap();
    lock.lock().unwrap();
    if layout.join("index.json").is_file() {
        return layout;
    }
    let staging = tempfile::Builder::new()
        .prefix(".bullseye-oci-")
        .tempdir_in(parent)
        .unwrap();
    let oci = staging.path().join("oci");
    let image = |tag: &str| format!("{}:{tag}", oci.display());
    umoci(&["init", "--layout", oci.to_str().unwrap()]);
    umoci(&["new", "--image", &image("empty")]);
    umoci(&[
        "insert",
        "--image",
        &image("empty"),
        "--tag",
        BULLSEYE,
        root.to_str().unwrap(),
        "/",
    ]);

    let upper = staging.path().join("upper");
    let st2common = format!("{ST2_SITE_PACKAGES}/st2common");
    let run = bullseye::run(
        &upper,
        &format!(
            "python3.9 -m venv --copies --without-pip /opt/stackstorm/st2\n\
             mkdir -p {st2common} {ST2_SITE_PACKAGES}/requests\n\
             echo \"__version__ = '3.9.0'\" > {st2common}/__init__.py\n\
             echo 'import os' > {st2common}/util.py\n\
             echo 'import os' > {ST2_SITE_PACKAGES}/requests/__init__.py\n"
        ),
    );
    assert!(
        run.status.success(),
        "making st2's venv in bullseye failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    umoci(&[
        "insert",
        "--image",
        &image(BULLSEYE),
        "--tag",
        ST2,
        upper.join("opt").to_str().unwrap(),
        "/opt",
    ]);
    fs::rename(&oci, &layout).unwrap();
    layout
}

/// `oci:LAYOUT:TAG` of one of the images.
pub fn oci_reference(tag: &str) -> String {
    format!("oci:{}:{tag}", layout().display())
}

/// Copies the image `tag` into `registry` as `repository:1`; returns that reference.
pub fn push(registry: &TestRegistry, tag: &str, repository: &str) -> String {
    let target = format!("{}/{repository}:1", registry.host());
    let output = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(oci_reference(tag))
        .arg(format!("docker://{target}"))
        .output()
        .expect("skopeo is installed");
    assert!(
        output.status.success(),
        "skopeo copy failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    target
}

/// Runs `umoci ARGS`, failing the test with its stderr if it fails.
pub fn umoci(args: &[&str]) {
    let output = Command::new("umoci")
        .args(args)
        .output()
        .expect("umoci is installed");
    assert!(
        output.status.success(),
        "umoci {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// An OCI layout at `dir` whose image `tag` is made with umoci from `steps`, each one layer:
/// `("insert", SOURCE, TARGET)`, `("whiteout", PATH, "")` or `("opaque", SOURCE, TARGET)`.
pub fn umoci_layout(dir: &Path, tag: &str, steps: &[(&str, &Path, &str)]) -> String {
    let image = format!("{}:{tag}", dir.display());
    umoci(&["init", "--layout", dir.to_str().unwrap()]);
    umoci(&["new", "--image", &image]);
    for (step, path, target) in steps {
        let path = path.to_str().unwrap();
        match *step {
            "insert" => umoci(&["insert", "--image", &image, path, target]),
            "opaque" => umoci(&["insert", "--image", &image, "--opaque", path, target]),
            "whiteout" => umoci(&["insert", "--image", &image, "--whiteout", path]),
            other => panic!("unknown umoci step {other}"),
        }
    }
    format!("oci:{image}")
}
