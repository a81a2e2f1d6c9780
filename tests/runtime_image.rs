//! `--runtime-image REF`: a runtime image (the bullseye root as an OCI image, see
//! `common::runtime_image`) pulled from the test's own registry or read from an OCI layout,
//! unpacked once into the cache, and described by running its own interpreter here.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::registry::TestRegistry;
use common::run::{Run, Sandbox};
use common::runtime_image::{self as images, BULLSEYE, ST2, ST2_SITE_PACKAGES};
use st2pack::build::runtime_image::{
    ImageRuntime, RuntimeImageError, fetch_runtime_image, load_runtime_image,
};
use st2pack::cache::{Bucket, Cache};
use st2pack::image::assemble::{HistoryEntry, Image};
use st2pack::image::blobs::BlobStore;
use st2pack::image::layout;
use st2pack::image::model::{Layer, OCI_LAYER_TAR, OCI_LAYER_ZSTD, sha256_digest};
use st2pack::image::unpack::UnpackError;
use st2pack::registry::{RegistryClient, RegistryOptions, RetryPolicy};
use st2pack::runtime::RuntimeError;
use walkdir::WalkDir;

fn client() -> RegistryClient {
    RegistryClient::new(RegistryOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(30),
        // Never the machine's own ~/.docker/config.json.
        docker_config_dir: Some(PathBuf::from("/nonexistent/st2pack-test-docker-config")),
        retry: RetryPolicy {
            attempts: 2,
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        },
        ..RegistryOptions::default()
    })
    .unwrap()
}

fn cache(sandbox: &Sandbox) -> Cache {
    Cache::from_path(sandbox.cache())
        .init(Duration::from_secs(5), || {})
        .unwrap()
}

async fn load(reference: &str, cache: &Cache) -> Result<ImageRuntime, RuntimeImageError> {
    load_runtime_image(reference, None, &client(), cache).await
}

/// What the bullseye interpreter is, wherever the image came from.
fn assert_is_bullseye(runtime: &ImageRuntime) {
    let target = &runtime.target;
    assert_eq!(target.python.to_string(), "3.9");
    assert_eq!(target.interpreter, Path::new("/usr/bin/python3.9"));
    assert_eq!(target.pyvenv_home, Path::new("/usr/bin"));
    assert_eq!(target.platform.uv_triple(), "x86_64-manylinux_2_31");
    assert!(target.system_site_packages);
    assert!(
        runtime.full_version.starts_with("3.9."),
        "{}",
        runtime.full_version
    );
    assert!(runtime.image.digest.starts_with("sha256:"));
    // The launcher runs the image's Python with the image's OpenSSL 1.1, not this machine's.
    let output = Command::new(&runtime.launcher)
        .args([
            "-c",
            "import sys, ssl; print(sys.version_info[:2], ssl.OPENSSL_VERSION)",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("(3, 9) OpenSSL 1.1.1"), "{stdout}");
    // Only what the interpreter needs was unpacked.
    let root = &runtime.image.root;
    assert!(root.join("usr/lib/python3.9/os.py").is_file());
    for skipped in [
        "usr/share/doc",
        "usr/share/man",
        "var",
        "dev",
        "root",
        "tmp",
    ] {
        assert!(!root.join(skipped).exists(), "{skipped} was unpacked");
    }
}

fn blob_gets(registry: &TestRegistry) -> usize {
    registry.count_requests("GET", "/blobs/sha256:", "200")
}

fn manifest_gets(registry: &TestRegistry) -> usize {
    registry.count_requests("GET", "/manifests/", "200")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_image_is_pulled_and_unpacked_once_per_digest() {
    let sandbox = Sandbox::new();
    let registry = TestRegistry::start_plain();
    let reference = images::push(&registry, BULLSEYE, "bullseye");
    let cache = cache(&sandbox);
    let before = blob_gets(&registry);

    let first = load(&reference, &cache).await.unwrap();
    assert_is_bullseye(&first);
    assert!(first.image.unpacked_now);
    assert_eq!(first.image.reference, reference);
    assert_eq!(first.target.st2_site_packages, None);
    assert!(blob_gets(&registry) > before, "the layers were downloaded");
    let digest = first.image.digest.clone();
    let root = first.image.root.clone();
    assert_eq!(
        root,
        cache
            .bucket(Bucket::Runtimes)
            .join(digest.trim_start_matches("sha256:"))
    );
    drop(first);

    // Without the layer blobs in the cache: nothing is downloaded or unpacked again, and the
    // tag costs one manifest request.
    fs::remove_dir_all(cache.bucket(Bucket::Blobs)).unwrap();
    let (blobs, manifests) = (blob_gets(&registry), manifest_gets(&registry));
    let again = load(&reference, &cache).await.unwrap();
    assert!(!again.image.unpacked_now);
    assert_eq!(
        (again.image.digest.as_str(), &again.image.root),
        (digest.as_str(), &root)
    );
    assert_eq!(
        blob_gets(&registry),
        blobs,
        "a layer blob was downloaded again"
    );
    assert_eq!(manifest_gets(&registry), manifests + 1);
    assert_is_bullseye(&again);

    // By digest, found in the cache: no request at all.
    let requests = registry.access_log().lines().count();
    let by_digest = format!("{}/bullseye@{digest}", registry.host());
    let pinned = load(&by_digest, &cache).await.unwrap();
    assert!(!pinned.image.unpacked_now);
    assert_eq!(pinned.image.root, root);
    assert_eq!(registry.access_log().lines().count(), requests);

    // `st2pack cache info` knows the bucket.
    let info = Run::from(
        Command::new(env!("CARGO_BIN_EXE_st2pack"))
            .args(["cache", "info", "--json", "--cache-dir"])
            .arg(sandbox.cache())
            .output()
            .unwrap(),
    );
    info.assert_ok();
    let runtimes = info.json()["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|bucket| bucket["name"] == "runtimes")
        .cloned()
        .unwrap_or_else(|| panic!("no runtimes bucket in {}", info.stdout));
    assert_eq!(runtimes["entries"], 1, "{runtimes}");
    assert!(
        runtimes["bytes"].as_u64().unwrap() > 10_000_000,
        "{runtimes}"
    );
    let table = Run::from(
        Command::new(env!("CARGO_BIN_EXE_st2pack"))
            .args(["cache", "info", "--cache-dir"])
            .arg(sandbox.cache())
            .output()
            .unwrap(),
    );
    assert!(
        table
            .stdout
            .lines()
            .any(|line| line.starts_with("runtimes")),
        "{}",
        table.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oci_layout_image_is_unpacked_once() {
    let sandbox = Sandbox::new();
    let cache = cache(&sandbox);
    let reference = images::oci_reference(BULLSEYE);
    let first = load(&reference, &cache).await.unwrap();
    assert_is_bullseye(&first);
    assert!(first.image.unpacked_now);
    assert_eq!(first.image.reference, reference);
    let marker = first.image.root.join("marker");
    fs::write(&marker, "").unwrap();

    let again = load(&reference, &cache).await.unwrap();
    assert!(!again.image.unpacked_now);
    assert_eq!(again.image.root, first.image.root);
    assert!(marker.exists(), "the root was unpacked again");
    // Nothing else in the bucket: no staging directory left behind.
    let entries: Vec<_> = fs::read_dir(cache.bucket(Bucket::Runtimes))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_st2_image_uses_the_base_interpreter_of_st2s_venv_and_its_site_packages() {
    let sandbox = Sandbox::new();
    let cache = cache(&sandbox);
    let runtime = load(&images::oci_reference(ST2), &cache).await.unwrap();
    assert_is_bullseye(&runtime);
    // st2's venv was made with --copies: its bin/python is a file, and the base interpreter is
    // found from its pyvenv.cfg, as virtualenv resolves it.
    let st2 = runtime.image.root.join("opt/stackstorm/st2");
    assert!(
        !fs::symlink_metadata(st2.join("bin/python"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(runtime.python.found_from, Path::new("/usr/bin/python3.9"));
    assert_eq!(
        runtime.target.st2_site_packages.as_deref(),
        Some(Path::new(ST2_SITE_PACKAGES))
    );
    // Of st2's site-packages, only st2common's version.
    let site_packages = runtime
        .image
        .root
        .join(ST2_SITE_PACKAGES.trim_start_matches('/'));
    assert!(site_packages.join("st2common/__init__.py").is_file());
    assert!(!site_packages.join("st2common/util.py").exists());
    assert!(!site_packages.join("requests").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn whiteouts_of_later_layers_remove_what_earlier_ones_put() {
    let sandbox = Sandbox::new();
    let files = sandbox.path().join("files");
    for (path, content) in [
        ("a/keep", "1"),
        ("a/gone", "2"),
        ("b/old", "3"),
        ("b/sub/old", "4"),
    ] {
        fs::create_dir_all(files.join(path).parent().unwrap()).unwrap();
        fs::write(files.join(path), content).unwrap();
    }
    let replacement = sandbox.path().join("replacement");
    fs::create_dir_all(&replacement).unwrap();
    fs::write(replacement.join("new"), "5").unwrap();
    let reference = images::umoci_layout(
        &sandbox.path().join("oci"),
        "t",
        &[
            ("insert", &files, "/"),
            ("whiteout", Path::new("/a/gone"), ""),
            ("opaque", &replacement, "/b"),
        ],
    );
    let cache = cache(&sandbox);
    let image = fetch_runtime_image(&reference, &client(), &cache)
        .await
        .unwrap();
    let root = &image.root;
    assert_eq!(fs::read_to_string(root.join("a/keep")).unwrap(), "1");
    assert!(!root.join("a/gone").exists());
    assert_eq!(fs::read_to_string(root.join("b/new")).unwrap(), "5");
    assert!(!root.join("b/old").exists());
    assert!(!root.join("b/sub").exists());
    let whiteouts: Vec<_> = WalkDir::new(root)
        .into_iter()
        .map(Result::unwrap)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(".wh."))
        .collect();
    assert!(whiteouts.is_empty(), "{whiteouts:?}");
}

/// A tar of `(name, kind, content or link target)` with names written as given, `..` included.
fn raw_tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(*kind);
        header.set_mode(if kind.is_dir() { 0o777 } else { 0o644 });
        let body: &[u8] = if kind.is_file() { data.as_bytes() } else { b"" };
        header.set_size(body.len() as u64);
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            header.set_link_name(data).unwrap();
        }
        header.set_cksum();
        builder.append(&header, body).unwrap();
    }
    builder.into_inner().unwrap()
}

/// An OCI layout at `dir` (tag `t`) of one layer per tar, each `(media type, tar)`, for
/// `architecture`.
fn layout_of(dir: &Path, architecture: &str, layers: &[(&str, Vec<u8>)]) -> String {
    let store = BlobStore::open(dir.with_extension("blobs")).unwrap();
    let mut image = Image::scratch();
    image.config["architecture"] = architecture.into();
    for (media_type, tar) in layers {
        let blob = match *media_type {
            OCI_LAYER_ZSTD => zstd::encode_all(&tar[..], 3).unwrap(),
            _ => tar.clone(),
        };
        let descriptor = store.put_bytes(media_type, &blob).unwrap();
        let layer = Layer {
            descriptor,
            diff_id: sha256_digest(tar),
        };
        image.append_layer(layer, HistoryEntry::default()).unwrap();
    }
    layout::write_image(dir, &image, &BTreeMap::new(), &["t"], &[&store]).unwrap();
    format!("oci:{}:t", dir.display())
}

/// Every path under `dir` whose file name starts with `prefix`.
fn named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
        .map(|entry| entry.path().to_path_buf())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_layer_writes_nothing_outside_the_root() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let sandbox = Sandbox::new();
    let cache = cache(&sandbox);
    // Not under /tmp, which is not unpacked.
    let outside = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let outside_path = outside.path().to_str().unwrap();

    // Symlinks planted by a first layer lead back into the root, even absolute ones; a hard
    // link is made inside it too.
    let planted = layout_of(
        &sandbox.path().join("planted"),
        "amd64",
        &[
            (
                OCI_LAYER_TAR,
                raw_tar(&[
                    ("abs", Symlink, outside_path),
                    ("up", Symlink, "../../../../../../../.."),
                    ("etc/", Directory, ""),
                ]),
            ),
            (
                OCI_LAYER_ZSTD,
                raw_tar(&[
                    ("abs/pwned-abs", Regular, "x"),
                    ("up/pwned-up", Regular, "x"),
                    ("/etc/pwned-slash", Regular, "x"),
                    ("abs/sub/", Directory, ""),
                    ("pwned-link", Link, "abs/pwned-abs"),
                    ("etc/device", tar::EntryType::Char, ""),
                    ("etc/fifo", tar::EntryType::Fifo, ""),
                ]),
            ),
        ],
    );
    let image = fetch_runtime_image(&planted, &client(), &cache)
        .await
        .unwrap();
    let root = &image.root;
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    for (name, inside) in [
        ("pwned-abs", root.join(outside_path.trim_start_matches('/'))),
        ("pwned-up", root.clone()),
        ("pwned-slash", root.join("etc")),
        ("pwned-link", root.clone()),
    ] {
        assert_eq!(named(sandbox.path(), name), [inside.join(name)], "{name}");
    }
    // Device nodes and FIFOs are not made.
    assert!(!root.join("etc/device").exists() && !root.join("etc/fifo").exists());

    // An entry naming `..` is refused, and nothing of it is written anywhere.
    let escaping = layout_of(
        &sandbox.path().join("escaping"),
        "amd64",
        &[(
            OCI_LAYER_ZSTD,
            raw_tar(&[("ok", Regular, "x"), ("../pwned-escape", Regular, "x")]),
        )],
    );
    let error = fetch_runtime_image(&escaping, &client(), &cache)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            RuntimeImageError::Layer {
                source: UnpackError::Breakout { .. },
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains(&escaping), "{message}");
    assert!(message.contains("../pwned-escape"), "{message}");
    assert_eq!(error.exit_code(), 2);
    assert!(named(sandbox.path(), "pwned-escape").is_empty());
    // The half-unpacked root went with the error.
    let left: Vec<_> = fs::read_dir(cache.bucket(Bucket::Runtimes))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path != &image.root)
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn images_that_cannot_be_a_runtime_are_refused_clearly() {
    let sandbox = Sandbox::new();
    let cache = cache(&sandbox);

    // No Python: busybox alone.
    let busybox = images::umoci_layout(
        &sandbox.path().join("busybox"),
        "1",
        &[("insert", Path::new("/bin/busybox"), "/bin/busybox")],
    );
    let error = load(&busybox, &cache).await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            RuntimeImageError::Runtime {
                source: RuntimeError::ImageHasNoPython { .. },
                ..
            }
        ),
        "{message}"
    );
    assert!(
        message.starts_with(&format!("--runtime-image {busybox}: ")),
        "{message}"
    );
    assert!(message.contains("/usr/bin/python3"), "{message}");
    assert!(message.contains("--target-interpreter"), "{message}");
    assert_eq!(error.exit_code(), 2);

    // Another architecture.
    let arm = layout_of(
        &sandbox.path().join("arm"),
        "arm64",
        &[(
            OCI_LAYER_TAR,
            raw_tar(&[("f", tar::EntryType::Regular, "x")]),
        )],
    );
    let error = load(&arm, &cache).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains(&arm), "{message}");
    assert!(
        message.contains("linux/arm64, not linux/amd64"),
        "{message}"
    );
    assert_eq!(error.exit_code(), 2);

    // From a registry, it is refused from its config, before any layer is downloaded.
    let registry = TestRegistry::start_plain();
    let remote = format!("{}/st2/arm:1", registry.host());
    let copied = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false", &arm])
        .arg(format!("docker://{remote}"))
        .output()
        .unwrap();
    assert!(copied.status.success(), "{copied:?}");
    let before = blob_gets(&registry);
    let message = load(&remote, &cache).await.unwrap_err().to_string();
    assert!(
        message.contains("linux/arm64, not linux/amd64"),
        "{message}"
    );
    assert_eq!(blob_gets(&registry) - before, 1, "the config only");

    // References that name nothing usable, quoted as typed; credentials never shown.
    for (given, needle) in [
        ("Not A Reference", "`Not A Reference`"),
        (
            "oci:/nonexistent/st2pack-runtime:1",
            "/nonexistent/st2pack-runtime",
        ),
    ] {
        let error = load(given, &cache).await.unwrap_err();
        let message = error.to_string();
        assert!(message.contains(needle), "{message}");
        assert_eq!(error.exit_code(), 2, "{message}");
    }
    let error = load("https://ci:s3cret-token@127.0.0.1:1/st2:3.8", &cache)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(!message.contains("s3cret-token"), "{message}");
    assert!(message.contains("***"), "{message}");
    assert_eq!(error.exit_code(), 2);
}
