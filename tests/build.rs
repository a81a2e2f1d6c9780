//! `st2pack build` end to end: a real docker-registry, images read back with skopeo and
//! unpacked with umoci, and the chart's own init-container copy step run under chroot.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::containerd::Containerd;
use common::images::{CHART_COPY, pull_and_unpack, push_busybox_base, skopeo};
use common::registry::{Fault, FaultProxy, TestRegistry};
use common::repos::{git, pack_repo, set_version};
use common::run::{Run, Sandbox};
use common::token::TokenServer;

/// The stackstorm-k8s chart's init container command, verbatim.
fn st2pack(sandbox: &Sandbox, args: &[&str]) -> Run {
    let mut command = sandbox.command(env!("CARGO_BIN_EXE_st2pack"), &[]);
    command.args(args);
    Run::from(command.output().unwrap())
}

/// `st2pack build` with the sandbox's cache and offline wheelhouse, and Debian's interpreter
/// (under /usr, so it can be bind-mounted into the unpacked image).
fn build(sandbox: &Sandbox, args: &[&str]) -> Run {
    let cache = sandbox.cache();
    let wheelhouse = sandbox.wheelhouse();
    let mut all = vec![
        "build",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--wheelhouse",
        wheelhouse.to_str().unwrap(),
        "--python",
        "/usr/bin/python3",
    ];
    // Packs the build installs are for this machine's interpreter; a tree given with --root is
    // layered as it is.
    if !args.contains(&"--root") {
        all.extend(["--runtime", "host"]);
    }
    all.extend_from_slice(args);
    st2pack(sandbox, &all)
}

/// Runs `script` with /bin/sh inside `rootfs`, with the host's /usr bind-mounted read-only (for
/// the Python interpreter the virtualenvs were built with), as `user`.
fn in_chroot(rootfs: &Path, user: &str, script: &str) -> std::process::Output {
    let outer = format!(
        "mount --bind -o ro /usr '{root}/usr' && exec chroot --userspec={user} '{root}' /bin/sh -ec '{script}'",
        root = rootfs.display(),
    );
    Command::new("unshare")
        .args(["--mount", "sh", "-ec", &outer])
        .output()
        .unwrap()
}

#[test]
fn the_charts_copy_step_works_on_a_pushed_image_and_a_non_root_user_can_use_it() {
    let sandbox = Sandbox::new();
    let registry = TestRegistry::start_plain();
    let base = push_busybox_base(&sandbox, &registry);
    let with_reqs = pack_repo(sandbox.path(), "with_reqs", &["0.3.0"]);
    let hello = pack_repo(sandbox.path(), "hello_st2", &["1.1.0"]);
    let tag = format!("{}/st2/packs:1.0", registry.host());
    let digest_file = sandbox.path().join("digest");
    let helm_file = sandbox.path().join("values.yaml");

    let run = build(
        &sandbox,
        &[
            &format!("file://{}", with_reqs.display()),
            hello.to_str().unwrap(),
            "--base",
            &base,
            "--tag",
            &tag,
            "--push",
            "--json",
            "--digest-file",
            digest_file.to_str().unwrap(),
            "--helm-values",
            helm_file.to_str().unwrap(),
        ],
    );
    run.assert_ok();
    let summary = run.json();
    let digest = summary["digest"].as_str().unwrap().to_string();
    assert_eq!(fs::read_to_string(&digest_file).unwrap().trim(), digest);

    // The Helm values are pinned by digest.
    let values: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&fs::read_to_string(&helm_file).unwrap()).unwrap();
    let entry = &values["st2"]["packs"]["images"][0];
    assert_eq!(
        entry["repository"].as_str().unwrap(),
        format!("{}/st2", registry.host())
    );
    assert_eq!(entry["name"], "packs");
    assert_eq!(entry["tag"].as_str().unwrap(), format!("1.0@{digest}"));

    // An independent reader sees the digest, the pack label and two layers per pack (its
    // virtualenv's, its own) on the base.
    let inspected: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{tag}"),
    ]))
    .unwrap();
    assert_eq!(inspected["Digest"], digest.as_str());
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 5);
    let label: serde_json::Value = serde_json::from_str(
        inspected["Labels"]["org.stackstorm.st2pack.packs"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(label[0]["name"], "hello_st2");
    assert_eq!(label[1]["name"], "with_reqs");
    assert_eq!(
        label[1]["commit"].as_str().unwrap(),
        git(&with_reqs, &["rev-parse", "HEAD"])
    );
    assert!(label[1]["python"].as_str().unwrap().starts_with("3."));

    // The chart's init container, verbatim, in the unpacked image.
    let work = tempfile::tempdir().unwrap();
    let rootfs = pull_and_unpack(&tag, work.path());
    for dir in [
        "usr",
        "opt/stackstorm/packs-shared",
        "opt/stackstorm/virtualenvs-shared",
    ] {
        fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    for (link, target) in [("lib", "usr/lib"), ("lib64", "usr/lib64")] {
        if !rootfs.join(link).exists() {
            std::os::unix::fs::symlink(target, rootfs.join(link)).unwrap();
        }
    }
    let copy = in_chroot(&rootfs, "0:0", CHART_COPY);
    assert!(
        copy.status.success(),
        "chart copy step failed: {}",
        String::from_utf8_lossy(&copy.stderr)
    );
    assert!(
        rootfs
            .join("opt/stackstorm/packs-shared/with_reqs/pack.yaml")
            .is_file()
    );

    // The st2 containers mount the shared volumes read-only where the image had them; as a
    // non-root user, every file is readable, scripts are executable, and the virtualenv runs.
    let check = format!(
        "mount --bind -o ro /usr '{root}/usr' \
         && mount --bind -o ro '{root}/opt/stackstorm/packs-shared' '{root}/opt/stackstorm/packs' \
         && mount --bind -o ro '{root}/opt/stackstorm/virtualenvs-shared' '{root}/opt/stackstorm/virtualenvs' \
         && exec chroot --userspec=65534:65534 '{root}' /bin/sh -ec '\
            find /opt/stackstorm/packs /opt/stackstorm/virtualenvs -type f -exec cat {{}} + | wc -c; \
            test -x /opt/stackstorm/packs/hello_st2/actions/hello.sh; \
            /opt/stackstorm/virtualenvs/with_reqs/bin/python -c \"import fixture_lib, six; print(fixture_lib.shout(\\\"ok\\\"))\"'",
        root = rootfs.display()
    );
    let output = Command::new("unshare")
        .args(["--mount", "sh", "-ec", &check])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "read-only use as a non-root user failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).lines().last(),
        Some("OK!")
    );

    // st2pack inspect reads the same label back.
    let inspect = st2pack(&sandbox, &["inspect", "--json", &tag]);
    inspect.assert_ok();
    let inspection = inspect.json();
    assert_eq!(inspection["digest"], digest.as_str());
    assert_eq!(inspection["packs"].as_array().unwrap().len(), 2);
    // Each layer with what made it: the base's, then each pack's virtualenv and the pack.
    let made: Vec<&str> = inspection["layers"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|l| l["created_by"].as_str().unwrap())
        .collect();
    assert_eq!(
        made,
        [
            "st2pack: virtualenv hello_st2 1.1.0",
            "st2pack: pack hello_st2 1.1.0",
            "st2pack: virtualenv with_reqs 0.3.0",
            "st2pack: pack with_reqs 0.3.0",
        ]
    );
    assert!(
        inspection["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let shown = st2pack(&sandbox, &["inspect", &tag]);
    shown.assert_ok();
    assert!(
        shown
            .stdout
            .contains("(st2pack: virtualenv with_reqs 0.3.0)"),
        "{}",
        shown.stdout
    );
}

#[test]
fn builds_in_different_places_with_different_mtimes_and_umask_give_the_same_digest() {
    let sandbox = Sandbox::new();
    let base_layout = sandbox.path().join("base");
    let cache = sandbox.cache();
    st2pack(
        &sandbox,
        &[
            "base-image",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--tag",
            "base:1",
            "--output",
            &format!("oci:{}", base_layout.display()),
        ],
    )
    .assert_ok();
    // One pack source (the same commit), built into two places at different times, with
    // different umasks and source mtimes.
    let repo = pack_repo(sandbox.path(), "with_reqs", &["0.3.0"]);
    let mut digests = Vec::new();
    for (place, umask, stamp) in [
        ("one", "022", "200001010000"),
        ("two", "077", "203001010000"),
    ] {
        let dir = sandbox.path().join(place);
        fs::create_dir(&dir).unwrap();
        Command::new("sh")
            .args([
                "-c",
                &format!("find '{}' -exec touch -h -t {stamp} {{}} +", repo.display()),
            ])
            .status()
            .unwrap();
        let root = dir.join("root");
        let cache = dir.join("cache");
        let wheelhouse = sandbox.wheelhouse();
        let script = format!(
            "umask {umask} && exec '{bin}' build 'file://{repo}' --root '{root}' --cache-dir '{cache}' --wheelhouse '{wh}' --python /usr/bin/python3 --base 'oci:{base}:1' --tag st2packs:1.0",
            bin = env!("CARGO_BIN_EXE_st2pack"),
            repo = repo.display(),
            root = root.display(),
            cache = cache.display(),
            wh = wheelhouse.display(),
            base = base_layout.display(),
        );
        let mut command = sandbox.command("sh", &[]);
        command.args(["-c", &script]);
        let run = Run::from(command.output().unwrap());
        run.assert_ok();
        digests.push(run.stdout.trim().to_string());
    }
    assert!(digests[0].starts_with("sha256:"), "{digests:?}");
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn after_changing_one_pack_exactly_one_layer_blob_is_uploaded() {
    let sandbox = Sandbox::new();
    let registry = TestRegistry::start_plain();
    let base = push_busybox_base(&sandbox, &registry);
    let hello = pack_repo(sandbox.path(), "hello_st2", &["1.1.0"]);
    let with_reqs = pack_repo(sandbox.path(), "with_reqs", &["0.3.0"]);
    let tag = format!("{}/st2/incremental:1", registry.host());
    let specs = [
        format!("file://{}", hello.display()),
        format!("file://{}", with_reqs.display()),
    ];
    let args = |tag: &str| -> Vec<String> {
        let mut args: Vec<String> = specs.to_vec();
        args.extend(["--base", &base, "--tag", tag, "--push", "--json"].map(String::from));
        args
    };
    let first = build(
        &sandbox,
        &args(&tag).iter().map(String::as_str).collect::<Vec<_>>(),
    );
    first.assert_ok();
    let uploads_before = registry.upload_count_in("st2/incremental");

    set_version(&hello, "1.2.0");
    git(&hello, &["commit", "-q", "-am", "new version"]);
    let tag2 = format!("{}/st2/incremental:2", registry.host());
    let second = build(
        &sandbox,
        &args(&tag2).iter().map(String::as_str).collect::<Vec<_>>(),
    );
    second.assert_ok();
    let summary = second.json();
    let reused: Vec<bool> = summary["packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["layer_reused"].as_bool().unwrap())
        .collect();
    assert_eq!(reused, [false, true], "only hello_st2's layer is rebuilt");
    // Reinstalled at its new version, the pack kept its virtualenv (linked again from the
    // installer's cache): the same layer, whose compressed bytes were copied rather than
    // compressed again.
    let venv = |summary: &serde_json::Value| summary["packs"][0]["virtualenv"].clone();
    assert_eq!(venv(&summary)["layer"], venv(&first.json())["layer"]);
    let compressed =
        |summary: &serde_json::Value| venv(summary)["layer_bytes_compressed"].as_u64().unwrap();
    assert!(
        compressed(&summary) * 10 < compressed(&first.json()),
        "{} of {} bytes compressed again",
        compressed(&summary),
        compressed(&first.json())
    );
    assert_eq!(
        summary["pushed"][0]["uploaded"], 2,
        "one layer and the config"
    );
    let uploads = registry.upload_count_in("st2/incremental") - uploads_before;
    assert_eq!(
        uploads, 2,
        "exactly one layer blob (plus the new config) was uploaded"
    );
}

/// A `docker-credential-st2test` program, as `docker login` with a credential helper leaves
/// one on PATH: answers `get` with `login` for `host` only, and notes every server asked about.
fn credential_helper(dir: &Path, host: &str, login: (&str, &str)) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dir).unwrap();
    let asked = dir.join("asked");
    let script = r#"#!/bin/sh
[ "$1" = get ] || exit 1
read -r server
echo "$server" >> 'ASKED'
if [ "$server" = 'HOST' ]; then
  printf '{"ServerURL":"%s","Username":"USER","Secret":"SECRET"}\n' "$server"
else
  echo 'credentials not found in native keychain'
  exit 1
fi
"#
    .replace("ASKED", asked.to_str().unwrap())
    .replace("HOST", host)
    .replace("USER", login.0)
    .replace("SECRET", login.1);
    let helper = dir.join("docker-credential-st2test");
    fs::write(&helper, script).unwrap();
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    asked
}

#[test]
fn credentials_come_from_docker_credential_helpers_and_bearer_tokens() {
    let sandbox = Sandbox::new();
    let root = bad_input::installed_root(&sandbox);
    let tokens = TokenServer::start("ci", "helper-pass-4");
    let registry = TestRegistry::start_with_tokens(&tokens);
    let helpers = sandbox.path().join("helpers");
    let asked = credential_helper(&helpers, &registry.host(), ("ci", "helper-pass-4"));
    let docker_config = sandbox.path().join("docker-config");
    fs::create_dir_all(&docker_config).unwrap();
    let path = format!(
        "{}:{}",
        helpers.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let push_with = |config: &str, tag: &str| {
        fs::write(docker_config.join("config.json"), config).unwrap();
        let env = [
            ("PATH", path.as_str()),
            ("DOCKER_CONFIG", docker_config.to_str().unwrap()),
        ];
        let mut command = sandbox.command(env!("CARGO_BIN_EXE_st2pack"), &env);
        command.args([
            "build",
            "--root",
            root.to_str().unwrap(),
            "--base",
            "scratch",
        ]);
        command.args(["--cache-dir", sandbox.cache().to_str().unwrap(), "--push"]);
        command.args(["--tag", &format!("{}/st2/{tag}", registry.host())]);
        Run::from(command.output().unwrap())
    };

    // credHelpers names the helper for this registry; its login is traded for bearer tokens.
    let per_registry = format!(r#"{{"credHelpers":{{"{}":"st2test"}}}}"#, registry.host());
    push_with(&per_registry, "helper:1").assert_ok();
    assert_eq!(fs::read_to_string(&asked).unwrap().trim(), registry.host());
    assert!(tokens.issued() > 0);
    let inspect = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            "--creds",
            "ci:helper-pass-4",
        ])
        .arg(format!("docker://{}/st2/helper:1", registry.host()))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );

    // credsStore: the same helper as the store for every registry.
    push_with(r#"{"credsStore":"st2test"}"#, "helper:2").assert_ok();

    // No credentials (the store knows nothing of this registry): the registry refuses, and the
    // message says a login is needed.
    let elsewhere = r#"{"credHelpers":{"example.invalid":"st2test"}}"#;
    push_with(elsewhere, "helper:3")
        .assert_code(1)
        .assert_stderr_has(&registry.host());

    // A helper that is not installed: a configuration error naming the program to install.
    let missing = format!(r#"{{"credHelpers":{{"{}":"nowhere"}}}}"#, registry.host());
    push_with(&missing, "helper:4")
        .assert_code(2)
        .assert_stderr_has("docker-credential-nowhere");
}

#[test]
fn kind_load_imports_the_docker_archive_into_containerd() {
    let sandbox = Sandbox::new();
    let root = bad_input::installed_root(&sandbox);
    let archive = sandbox.path().join("image.tar");
    let run = build(
        &sandbox,
        &[
            "--root",
            root.to_str().unwrap(),
            "--base",
            "scratch",
            "--tag",
            "registry.example.com/st2/packs:kind",
            "--output",
            &format!("docker-archive:{}", archive.display()),
        ],
    );
    run.assert_ok();
    let digest = run.stdout.trim().to_string();

    // What `kind load image-archive` runs on each node, into the namespace kubelet reads.
    let containerd = Containerd::start();
    let output = |out: std::process::Output| {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}\n{}", containerd.log());
        text
    };
    output(containerd.ctr(&[
        "images",
        "import",
        "--all-platforms",
        "--digests",
        "--snapshotter",
        "native",
        archive.to_str().unwrap(),
    ]));
    let images = output(containerd.ctr(&["images", "ls"]));
    let line = images
        .lines()
        .find(|line| line.starts_with("registry.example.com/st2/packs:kind "))
        .unwrap_or_else(|| panic!("the tag was not imported: {images}"));
    assert!(line.contains(&digest), "{line} is not {digest}");
    // Unpacked too: containerd decompressed both layers (the pack's virtualenv's, then its own)
    // into its snapshotter and checked each against the config's diff id (an import fails on a
    // mismatch).
    let snapshots = output(containerd.ctr(&["snapshots", "--snapshotter", "native", "ls"]));
    assert_eq!(snapshots.lines().skip(1).count(), 2, "{snapshots}");
}

#[test]
fn outputs_without_a_registry_are_read_by_skopeo_and_inspect() {
    let sandbox = Sandbox::new();
    let root = bad_input::installed_root(&sandbox);
    let layout = sandbox.path().join("layout");
    let archive = sandbox.path().join("image.tar");
    let run = build(
        &sandbox,
        &[
            "--root",
            root.to_str().unwrap(),
            "--base",
            "scratch",
            "--tag",
            "registry.example.com/st2/packs:2.0",
            "--output",
            &format!("oci:{}", layout.display()),
            "--output",
            &format!("docker-archive:{}", archive.display()),
            "--compression",
            "zstd",
        ],
    );
    run.assert_ok()
        .assert_stderr_has("--base scratch has no /bin/sh");
    let digest = run.stdout.trim().to_string();

    let from_layout: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("oci:{}:2.0", layout.display()),
    ]))
    .unwrap();
    assert_eq!(from_layout["Digest"], digest.as_str());
    let from_archive: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("docker-archive:{}", archive.display()),
    ]))
    .unwrap();
    assert_eq!(from_archive["Layers"].as_array().unwrap().len(), 2);
    let raw: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:2.0", layout.display()),
    ]))
    .unwrap();
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );

    // The layout, used as a base, is read and not written to (as if another tool had made it).
    let _ = fs::remove_dir_all(layout.join("blobs/.tmp"));
    let listing = |dir: &Path| -> Vec<String> {
        walkdir::WalkDir::new(dir)
            .sort_by_file_name()
            .into_iter()
            .map(|e| e.unwrap().path().display().to_string())
            .collect()
    };
    let files_before = listing(&layout);
    let base = format!("oci:{}:2.0", layout.display());
    build(
        &sandbox,
        &[
            "--root",
            root.to_str().unwrap(),
            "--base",
            &base,
            "--tag",
            "x:1",
        ],
    )
    .assert_ok();
    assert_eq!(
        listing(&layout),
        files_before,
        "the base layout was modified"
    );
    let inspect = st2pack(
        &sandbox,
        &[
            "inspect",
            "--json",
            &format!("oci:{}:2.0", layout.display()),
        ],
    );
    inspect.assert_ok();
    assert_eq!(inspect.json()["packs"][0]["name"], "hello_st2");
}

#[test]
fn pull_as_names_the_image_as_nodes_pull_it_in_the_helm_values_still_pinned_by_digest() {
    let sandbox = Sandbox::new();
    let root = bad_input::installed_root(&sandbox);
    let registry = TestRegistry::start_plain();
    let tag = format!("{}/st2packs:7", registry.host());
    let helm_file = sandbox.path().join("values.yaml");
    let run = build(
        &sandbox,
        &[
            "--root",
            root.to_str().unwrap(),
            "--base",
            "scratch",
            "--tag",
            &tag,
            "--push",
            "--pull-as",
            "localhost:5000/st2packs",
            "--helm-values",
            helm_file.to_str().unwrap(),
            "--json",
        ],
    );
    run.assert_ok();
    let digest = run.json()["digest"].as_str().unwrap().to_string();
    // Pushed where --tag says ...
    let inspected: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{tag}"),
    ]))
    .unwrap();
    assert_eq!(inspected["Digest"], digest.as_str());
    // ... and named in the written and printed values as nodes pull it, with the build's tag
    // and digest.
    let values: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&fs::read_to_string(&helm_file).unwrap()).unwrap();
    let entry = &values["st2"]["packs"]["images"][0];
    assert_eq!(entry["repository"], "localhost:5000");
    assert_eq!(entry["name"], "st2packs");
    assert_eq!(entry["tag"].as_str().unwrap(), format!("7@{digest}"));
    run.assert_stderr_has("repository: \"localhost:5000\"");
    assert!(
        !run.stderr
            .contains(&format!("repository: \"{}\"", registry.host()))
    );
}

mod bad_input {
    use super::*;

    #[test]
    fn a_pull_as_with_a_tag_is_a_usage_error_before_any_work() {
        let sandbox = Sandbox::new();
        build(
            &sandbox,
            &[
                "--root",
                "/nonexistent",
                "--tag",
                "x:1",
                "--pull-as",
                "localhost:5000/st2packs:1",
            ],
        )
        .assert_code(2)
        .assert_stderr_has("--pull-as localhost:5000/st2packs:1: it carries a tag");
    }

    #[test]
    fn missing_root_and_empty_packs_dir_are_usage_errors() {
        let sandbox = Sandbox::new();
        let missing = sandbox.path().join("nope");
        build(
            &sandbox,
            &[
                "--root",
                missing.to_str().unwrap(),
                "--base",
                "scratch",
                "--tag",
                "x:1",
            ],
        )
        .assert_code(2)
        .assert_stderr_has(&format!("--root {}: no such directory", missing.display()));
        let empty = sandbox.path().join("empty");
        fs::create_dir_all(empty.join("packs")).unwrap();
        build(
            &sandbox,
            &[
                "--root",
                empty.to_str().unwrap(),
                "--base",
                "scratch",
                "--tag",
                "x:1",
            ],
        )
        .assert_code(2)
        .assert_stderr_has("has no packs/ directory with packs in it");
    }

    #[test]
    fn invalid_reference_names_what_was_typed() {
        let sandbox = Sandbox::new();
        build(&sandbox, &["--root", "/nonexistent", "--tag", "Bad Name:1"])
            .assert_code(2)
            .assert_stderr_has("Bad Name:1");
        build(
            &sandbox,
            &[
                "--root",
                "/nonexistent",
                "--tag",
                "x:1",
                "--output",
                "tarball:x",
            ],
        )
        .assert_code(2)
        .assert_stderr_has("tarball:x");
    }

    /// An output that cannot be written is refused before anything is installed, built or
    /// cached, naming what was typed.
    #[test]
    fn a_bad_output_is_a_usage_error_before_any_work() {
        let sandbox = Sandbox::new();
        let hello = common::repos::fixture_pack("hello_st2");
        let file = sandbox.path().join("a-file");
        fs::write(&file, "not a directory").unwrap();
        let cases = [
            (
                "docker-archive:/nonexistent/dir/x.tar".to_string(),
                "/nonexistent/dir is not an existing directory".to_string(),
            ),
            (
                format!("docker-archive:{}", sandbox.path().display()),
                "is a directory; name the archive file to write".to_string(),
            ),
            (
                format!("oci:{}", file.display()),
                format!("{} exists and is not a directory", file.display()),
            ),
            (
                format!("oci:{}/layout", file.display()),
                format!("{} exists and is not a directory", file.display()),
            ),
        ];
        for (output, problem) in &cases {
            let run = build(
                &sandbox,
                &[
                    "--no-base-requirements",
                    "--base",
                    "scratch",
                    "--tag",
                    "st2packs:1",
                    "--output",
                    output,
                    hello.to_str().unwrap(),
                ],
            );
            run.assert_code(2)
                .assert_stderr_has(&format!("--output {output}: "))
                .assert_stderr_has(problem);
            assert!(
                !run.stderr.contains("hello_st2"),
                "nothing should be installed\n--- stderr\n{}",
                run.stderr
            );
            assert!(!sandbox.cache().exists(), "the build touched the cache");

            let cache = sandbox.cache();
            st2pack(
                &sandbox,
                &[
                    "base-image",
                    "--cache-dir",
                    cache.to_str().unwrap(),
                    "--tag",
                    "st2/busybox:1",
                    "--output",
                    output,
                ],
            )
            .assert_code(2)
            .assert_stderr_has(&format!("--output {output}: "))
            .assert_stderr_has(problem);
            assert!(!cache.exists(), "base-image touched the cache");
        }
        assert_eq!(fs::read_to_string(&file).unwrap(), "not a directory");
    }

    #[test]
    fn unreachable_registry_fails_quickly_naming_it() {
        let sandbox = Sandbox::new();
        let root = installed_root(&sandbox);
        let port = common::servers::free_port();
        let started = std::time::Instant::now();
        push_root(&sandbox, &root, &format!("127.0.0.1:{port}/st2/packs:1"))
            .assert_code(1)
            .assert_stderr_has(&format!("127.0.0.1:{port}"));
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
    }

    #[test]
    fn wrong_password_is_a_clear_error_without_the_password() {
        let sandbox = Sandbox::new();
        let root = installed_root(&sandbox);
        let registry = TestRegistry::start_tls_htpasswd("ci", "right-password");
        let mut command = sandbox.command(env!("CARGO_BIN_EXE_st2pack"), &[]);
        command
            .args([
                "build",
                "--root",
                root.to_str().unwrap(),
                "--base",
                "scratch",
                "--push",
                "--username",
                "ci",
                "--password-stdin",
            ])
            .args([
                "--ca-file",
                registry.ca_file().to_str().unwrap(),
                "--tag",
                &format!("{}/st2/packs:1", registry.host()),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"Wr0ngPassw0rd\n")
            .unwrap();
        let run = Run::from(child.wait_with_output().unwrap());
        run.assert_code(1).assert_stderr_has("authentication");
        assert!(!run.stderr.contains("Wr0ngPassw0rd"));
    }

    #[test]
    fn a_registry_failing_mid_upload_is_retried_then_reported_without_writing_the_tag() {
        let sandbox = Sandbox::new();
        let root = installed_root(&sandbox);
        let registry = TestRegistry::start_plain();
        // Two dropped uploads: the retries get through.
        let flaky = FaultProxy::start(registry.port(), Fault::DropMidUpload, 2);
        push_root(&sandbox, &root, &format!("{}/st2/flaky:1", flaky.host())).assert_ok();
        // Every upload dropped: a clear error, and the tag does not exist.
        let broken = FaultProxy::start(registry.port(), Fault::DropMidUpload, usize::MAX);
        let run = push_root(&sandbox, &root, &format!("{}/st2/broken:1", broken.host()));
        run.assert_code(1).assert_stderr_has("st2/broken");
        let inspect = Command::new("skopeo")
            .args([
                "inspect",
                "--tls-verify=false",
                &format!("docker://{}/st2/broken:1", registry.host()),
            ])
            .output()
            .unwrap();
        assert!(
            !inspect.status.success(),
            "the tag must not exist after a failed push"
        );
    }

    #[test]
    fn a_fifo_in_a_pack_is_refused_naming_it() {
        let sandbox = Sandbox::new();
        let root = installed_root(&sandbox);
        let fifo = root.join("packs/hello_st2/actions/pipe");
        assert!(
            Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        build(
            &sandbox,
            &[
                "--root",
                root.to_str().unwrap(),
                "--base",
                "scratch",
                "--tag",
                "x:1",
                "--output",
                &format!("oci:{}", sandbox.path().join("out").display()),
            ],
        )
        .assert_code(1)
        .assert_stderr_has(&fifo.display().to_string());
    }

    /// Builds the tree at `root` on scratch and pushes it as `tag`.
    fn push_root(sandbox: &Sandbox, root: &Path, tag: &str) -> Run {
        build(
            sandbox,
            &[
                "--root",
                root.to_str().unwrap(),
                "--base",
                "scratch",
                "--push",
                "--tag",
                tag,
            ],
        )
    }

    /// A tree installed by st2-pack-install, for the tests that start from --root.
    pub(super) fn installed_root(sandbox: &Sandbox) -> PathBuf {
        let root = sandbox.path().join("root");
        let hello = common::repos::fixture_pack("hello_st2");
        let mut command = sandbox.command(env!("CARGO_BIN_EXE_st2-pack-install"), &[]);
        command
            .arg("--packs-dir")
            .arg(root.join("packs"))
            .arg("--virtualenvs-dir")
            .arg(root.join("virtualenvs"))
            .arg("--cache-dir")
            .arg(sandbox.cache())
            .arg("--wheelhouse")
            .arg(sandbox.wheelhouse())
            .arg("--no-base-requirements")
            .arg(&hello);
        Run::from(command.output().unwrap()).assert_ok();
        root
    }
}

#[test]
fn base_image_refuses_a_dynamically_linked_busybox_naming_its_interpreter() {
    let sandbox = Sandbox::new();
    let layout = sandbox.path().join("base");
    let cache = sandbox.cache();
    let interpreter = String::from_utf8(
        Command::new("sh")
            .args([
                "-c",
                "readelf -l /bin/ls | sed -n 's/.*interpreter: \\(.*\\)]/\\1/p'",
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let interpreter = interpreter.trim();
    assert!(!interpreter.is_empty(), "/bin/ls names no interpreter");
    st2pack(
        &sandbox,
        &[
            "base-image",
            "--busybox",
            "/bin/ls",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--tag",
            "base:1",
            "--output",
            &format!("oci:{}", layout.display()),
        ],
    )
    .assert_code(2)
    .assert_stderr_has("--busybox /bin/ls: dynamically linked")
    .assert_stderr_has(interpreter);
    assert!(!layout.exists());
}

/// The label (and the pack's record) names the source given to this build, even when an earlier
/// build installed the very same commit from another URL into the same cached build root.
#[test]
fn the_label_names_the_source_given_even_for_a_commit_built_before_from_elsewhere() {
    let sandbox = Sandbox::new();
    let repo = pack_repo(sandbox.path(), "hello_st2", &["1.1.0"]);
    let mirror = sandbox.path().join("mirror");
    fs::create_dir(&mirror).unwrap();
    let mirror = common::repos::bare_clone(&repo, &mirror, "hello_st2");
    for source in [
        format!("file://{}", repo.display()),
        format!("file://{}", mirror.display()),
    ] {
        let layout = sandbox.path().join("layout");
        build(
            &sandbox,
            &[
                "--no-base-requirements",
                &source,
                "--base",
                "scratch",
                "--tag",
                "st2packs:1",
                "--output",
                &format!("oci:{}:1", layout.display()),
            ],
        )
        .assert_ok();
        let inspect = st2pack(
            &sandbox,
            &["inspect", "--json", &format!("oci:{}:1", layout.display())],
        );
        assert_eq!(
            inspect.assert_ok().json()["packs"][0]["source"],
            source.as_str()
        );
        fs::remove_dir_all(&layout).unwrap();
    }
}
