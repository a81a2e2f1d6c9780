//! `st2pack merge` end to end: pack images built into two repositories of a real docker-registry,
//! merged by mounting their layers (counted in the registry's access log), read back with skopeo
//! and umoci, and the chart's init-container copy step run in the result under chroot.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::images::{CHART_COPY, push_busybox_base, skopeo, umoci_unpack};
use common::registry::TestRegistry;
use common::repos::{copy_fixture, git, pack_repo};
use common::run::{Run, Sandbox};

/// The stackstorm-k8s chart's init container command, verbatim.
fn st2pack(sandbox: &Sandbox, args: &[&str]) -> Run {
    let mut command = sandbox.command(env!("CARGO_BIN_EXE_st2pack"), &[]);
    command.args(args);
    Run::from(command.output().unwrap())
}

/// `st2pack build` with the sandbox's cache and offline wheelhouse, and Debian's interpreter
/// (under /usr, so it can be bind-mounted into the unpacked image).
fn build(sandbox: &Sandbox, args: &[&str]) -> Run {
    let mut command = sandbox.build_command(&sandbox.cache(), &[]);
    command.args(args);
    Run::from(command.output().unwrap())
}

/// `st2pack merge` with a cache directory of its own (empty unless a test filled it).
fn merge(sandbox: &Sandbox, cache: &Path, args: &[&str]) -> Run {
    let mut all = vec!["merge", "--cache-dir", cache.to_str().unwrap()];
    all.extend_from_slice(args);
    st2pack(sandbox, &all)
}

/// Runs the chart's copy step with the image's own /bin/sh and /bin/cp in `rootfs`, as root.
fn chart_copy(rootfs: &Path) {
    for dir in [
        "opt/stackstorm/packs-shared",
        "opt/stackstorm/virtualenvs-shared",
    ] {
        fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    let output = Command::new("chroot")
        .arg(rootfs)
        .args(["/bin/sh", "-ec", CHART_COPY])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "chart copy step failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A git repository of fixture pack `fixture` under the pack name `name`, tagged `v1.0.0`.
fn renamed_pack_repo(root: &Path, fixture: &str, name: &str) -> PathBuf {
    let repo = root.join(name);
    copy_fixture(fixture, &repo);
    let manifest = repo.join("pack.yaml");
    let text: Vec<String> = fs::read_to_string(&manifest)
        .unwrap()
        .lines()
        .map(|line| match line.split_once(':') {
            Some(("ref" | "name", _)) => format!("{}: {name}", line.split(':').next().unwrap()),
            Some(("version", _)) => "version: 1.0.0".to_string(),
            _ => line.to_string(),
        })
        .collect();
    fs::write(&manifest, text.join("\n") + "\n").unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "release 1.0.0"]);
    git(&repo, &["tag", "v1.0.0"]);
    repo
}

/// The requests of the access log after its first `skip` lines, as `METHOD PATH STATUS`.
fn requests_after(registry: &TestRegistry, skip: usize) -> Vec<String> {
    registry
        .access_log()
        .lines()
        .skip(skip)
        .filter_map(|line| {
            let (_, rest) = line.split_once('"')?;
            let (request, after) = rest.split_once('"')?;
            let mut parts = request.split(' ');
            let status = after.split_whitespace().next()?;
            Some(format!("{} {} {status}", parts.next()?, parts.next()?))
        })
        .collect()
}

fn label_of(inspected: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(
        inspected["Labels"]["org.stackstorm.st2pack.packs"]
            .as_str()
            .expect("the merged image has the packs label"),
    )
    .unwrap()
}

#[test]
fn merging_in_one_registry_mounts_every_layer_and_the_chart_gets_every_pack() {
    let sandbox = Sandbox::new();
    let registry = TestRegistry::start_plain();
    let host = registry.host();
    let base = push_busybox_base(&sandbox, &registry);
    let hello = pack_repo(sandbox.path(), "hello_st2", &["1.1.0", "1.2.0"]);
    let with_reqs = pack_repo(sandbox.path(), "with_reqs", &["0.3.0"]);
    let team_b = renamed_pack_repo(sandbox.path(), "hello_st2", "team_b");
    let spec = |repo: &Path, version: &str| format!("file://{}=v{version}", repo.display());

    // Team A: hello_st2 1.1.0 and with_reqs; team B: hello_st2 1.2.0 and team_b.
    let image_a = format!("{host}/team-a/st2packs:1");
    let image_b = format!("{host}/team-b/st2packs:1");
    for (image, specs) in [
        (&image_a, [spec(&hello, "1.1.0"), spec(&with_reqs, "0.3.0")]),
        (&image_b, [spec(&hello, "1.2.0"), spec(&team_b, "1.0.0")]),
    ] {
        build(
            &sandbox,
            &[
                &specs[0], &specs[1], "--base", &base, "--tag", image, "--push",
            ],
        )
        .assert_ok();
    }

    // Merged into a third repository, from an empty cache: nothing to upload but the config.
    let logged = registry.access_log().lines().count();
    let tag = format!("{host}/st2/all:1");
    let helm_file = sandbox.path().join("values.yaml");
    let run = merge(
        &sandbox,
        &sandbox.path().join("merge-cache"),
        &[
            &image_a,
            &image_b,
            "--tag",
            &tag,
            "--push",
            "--json",
            "--helm-values",
            helm_file.to_str().unwrap(),
        ],
    );
    run.assert_ok();
    let summary = run.json();
    let digest = summary["digest"].as_str().unwrap().to_string();
    let requests = requests_after(&registry, logged);
    let count = |method: &str, needle: &str, status: &str| {
        requests
            .iter()
            .filter(|r| {
                let mut parts = r.split(' ');
                parts.next() == Some(method)
                    && parts.next().is_some_and(|path| path.contains(needle))
                    && parts.next() == Some(status)
            })
            .count()
    };
    let all = requests.join("\n");

    // The merged image, as skopeo reads it from the registry.
    let inspected: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{tag}"),
    ]))
    .unwrap();
    assert_eq!(inspected["Digest"], digest.as_str());
    let layers: Vec<String> = inspected["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        layers.len(),
        7,
        "busybox and three packs, each a virtualenv layer and its own: {layers:?}"
    );
    let label = label_of(&inspected);
    let packs: Vec<(&str, &str)> = label
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["version"].as_str().unwrap()))
        .collect();
    assert_eq!(
        packs,
        [
            ("hello_st2", "1.2.0"),
            ("team_b", "1.0.0"),
            ("with_reqs", "0.3.0")
        ]
    );

    // No layer data moved: each layer mounted into st2/all, no layer blob read or written; one
    // upload (the config), one manifest.
    for layer in &layers {
        assert!(
            !requests
                .iter()
                .any(|r| r.starts_with("GET ") && r.contains(layer.as_str())),
            "layer {layer} was downloaded:\n{all}"
        );
    }
    assert_eq!(count("POST", "mount=", "201"), 7, "{all}");
    assert_eq!(count("PUT", "/blobs/uploads/", "201"), 1, "{all}");
    assert_eq!(count("PATCH", "/blobs/", "202"), 0, "{all}");
    assert_eq!(count("PUT", "/v2/st2/all/manifests/1", "201"), 1, "{all}");
    assert_eq!(
        count("GET", "/blobs/sha256:", "200"),
        2,
        "only the two configs are read:\n{all}"
    );
    assert_eq!(summary["pushed"][0]["mounted"], 7);
    assert_eq!(summary["pushed"][0]["uploaded"], 1);

    // Which image each pack came from, and what the later image replaced.
    let from: Vec<(&str, &str)> = summary["packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["from"].as_str().unwrap()))
        .collect();
    assert_eq!(
        from,
        [
            ("hello_st2", image_b.as_str()),
            ("team_b", image_b.as_str()),
            ("with_reqs", image_a.as_str())
        ]
    );
    assert_eq!(
        summary["packs"][0]["replaced"],
        serde_json::json!([{"image": image_a, "version": "1.1.0"}])
    );
    // Pinned by digest in the chart values, as build writes them.
    let values: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&fs::read_to_string(&helm_file).unwrap()).unwrap();
    assert_eq!(
        values["st2"]["packs"]["images"][0]["tag"].as_str().unwrap(),
        format!("1@{digest}")
    );
    // Every pack records the runtime it was built for (this machine's), and they agree.
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    for pack in label.as_array().unwrap() {
        assert_eq!(pack["runtime"]["interpreter"], "/usr/bin/python3", "{pack}");
    }

    // With the base named by --base (the one both images were built on): the same image, and
    // still no layer read.
    let logged = registry.access_log().lines().count();
    let with_base = merge(
        &sandbox,
        &sandbox.path().join("merge-cache"),
        &[
            &image_a,
            &image_b,
            "--base",
            &base,
            "--tag",
            &format!("{host}/st2/with-base:1"),
            "--push",
        ],
    );
    assert_eq!(with_base.assert_ok().stdout.trim(), digest);
    let requests = requests_after(&registry, logged);
    assert!(
        !requests.iter().any(|r| layers
            .iter()
            .any(|l| r.starts_with("GET ") && r.contains(l))),
        "{}",
        requests.join("\n")
    );

    // The image is the one a build of the same packs on the same base makes.
    let union = sandbox.path().join("union");
    let built = build(
        &sandbox,
        &[
            &spec(&hello, "1.2.0"),
            &spec(&team_b, "1.0.0"),
            &spec(&with_reqs, "0.3.0"),
            "--base",
            &base,
            "--tag",
            "st2packs:1",
            "--output",
            &format!("oci:{}", union.display()),
        ],
    );
    assert_eq!(built.assert_ok().stdout.trim(), digest);

    // The chart's init container, in the image umoci unpacked: every pack, the later image's
    // hello_st2.
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{tag}"),
        &format!("oci:{}:merged", layout.display()),
    ]);
    let rootfs = umoci_unpack(&format!("{}:merged", layout.display()), work.path());
    chart_copy(&rootfs);
    let shared = rootfs.join("opt/stackstorm/packs-shared");
    for pack in ["hello_st2", "team_b", "with_reqs"] {
        assert!(shared.join(pack).join("pack.yaml").is_file(), "{pack}");
        assert!(
            rootfs
                .join("opt/stackstorm/virtualenvs-shared")
                .join(pack)
                .join("pyvenv.cfg")
                .is_file(),
            "{pack}'s virtualenv"
        );
    }
    assert!(
        fs::read_to_string(shared.join("hello_st2/pack.yaml"))
            .unwrap()
            .contains("version: 1.2.0")
    );

    // Into an OCI layout, from an empty cache: the layers are fetched this time, and the image
    // is the same.
    let logged = registry.access_log().lines().count();
    let out = sandbox.path().join("merged-layout");
    let run = merge(
        &sandbox,
        &sandbox.path().join("layout-cache"),
        &[
            &image_a,
            &image_b,
            "--tag",
            "st2packs:merged",
            "--output",
            &format!("oci:{}", out.display()),
            "--source",
            "https://ci:s3cr3t-t0ken@git.example.com/team/packs",
        ],
    );
    run.assert_ok();
    assert!(!run.stderr.contains("s3cr3t-t0ken") && !run.stdout.contains("s3cr3t-t0ken"));
    let requests = requests_after(&registry, logged);
    for layer in &layers {
        assert!(
            requests
                .iter()
                .any(|r| r.starts_with("GET ") && r.contains(layer.as_str())),
            "layer {layer} was not fetched for the layout:\n{}",
            requests.join("\n")
        );
    }
    let from_layout: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("oci:{}:merged", out.display()),
    ]))
    .unwrap();
    assert_eq!(from_layout["Digest"], run.stdout.trim());
    assert_eq!(from_layout["Layers"].as_array().unwrap(), &layers);
    assert_eq!(label_of(&from_layout), label);
    // The same layers and label; the source annotation without its credentials.
    let manifest: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:merged", out.display()),
    ]))
    .unwrap();
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.source"],
        "https://***@git.example.com/team/packs"
    );
    let work = tempfile::tempdir().unwrap();
    let rootfs = umoci_unpack(&format!("{}:merged", out.display()), work.path());
    assert!(
        rootfs
            .join("opt/stackstorm/packs/team_b/pack.yaml")
            .is_file()
    );
}

mod bad_input {
    use super::*;

    /// An installed tree with one pack whose pin records the runtime its virtualenv was built
    /// for (as a build for a runtime leaves it).
    fn root_built_for(sandbox: &Sandbox, pack: &str, python: &str) -> PathBuf {
        let root = sandbox.path().join(format!("root-{pack}"));
        let dir = root.join("packs").join(pack);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("pack.yaml"),
            format!("ref: {pack}\nname: {pack}\ndescription: d\nversion: 1.0.0\nauthor: a\n"),
        )
        .unwrap();
        let pin = serde_json::json!({
            "name": pack,
            "version": "1.0.0",
            "source": format!("https://git.example.com/{pack}.git"),
            "ref": "v1.0.0",
            "commit": "0123456789abcdef",
            "virtualenv": {
                "key": "k",
                "python_version": format!("{python}.4"),
                "runtime": {
                    "kind": "preset",
                    "python": python,
                    "interpreter": format!("/usr/bin/python{python}"),
                    "platform": "x86_64-manylinux_2_31",
                },
            },
        });
        fs::write(
            dir.join(".st2pack.json"),
            serde_json::to_string_pretty(&pin).unwrap(),
        )
        .unwrap();
        let venv = root.join("virtualenvs").join(pack);
        fs::create_dir_all(&venv).unwrap();
        fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        root
    }

    /// Builds `root` on scratch into the layout `oci:<sandbox>/<name>:1`, returned.
    fn layout_of(sandbox: &Sandbox, root: &Path, name: &str) -> String {
        let layout = format!("oci:{}:1", sandbox.path().join(name).display());
        let cache = sandbox.cache();
        // Without runtime options: the tree is layered as it is.
        st2pack(
            sandbox,
            &[
                "build",
                "--cache-dir",
                cache.to_str().unwrap(),
                "--root",
                root.to_str().unwrap(),
                "--base",
                "scratch",
                "--tag",
                "st2packs:1",
                "--output",
                &layout,
            ],
        )
        .assert_ok();
        layout
    }

    #[test]
    fn packs_built_for_different_runtimes_are_refused_naming_both() {
        let sandbox = Sandbox::new();
        let focal = layout_of(&sandbox, &root_built_for(&sandbox, "aws", "3.8"), "a");
        let jammy = layout_of(&sandbox, &root_built_for(&sandbox, "jira", "3.10"), "b");
        let out = sandbox.path().join("out");
        let run = merge(
            &sandbox,
            &sandbox.cache(),
            &[
                &focal,
                &jammy,
                "--tag",
                "st2packs:1",
                "--output",
                &format!("oci:{}", out.display()),
            ],
        );
        run.assert_code(2)
            .assert_stderr_has("different runtimes")
            .assert_stderr_has(&format!("pack aws of {focal}"))
            .assert_stderr_has("CPython 3.8 at /usr/bin/python3.8")
            .assert_stderr_has(&format!("pack jira of {jammy}"))
            .assert_stderr_has("CPython 3.10 at /usr/bin/python3.10");
        assert!(!out.exists(), "nothing is written");

        // The same runtime merges, without a warning.
        let also_focal = layout_of(&sandbox, &root_built_for(&sandbox, "zabbix", "3.8"), "c");
        let run = merge(
            &sandbox,
            &sandbox.cache(),
            &[
                &focal,
                &also_focal,
                "--tag",
                "st2packs:1",
                "--output",
                &format!("oci:{}", out.display()),
            ],
        );
        run.assert_ok();
        assert!(!run.stderr.contains("warning"), "{}", run.stderr);
        let inspect = st2pack(
            &sandbox,
            &["inspect", "--json", &format!("oci:{}:1", out.display())],
        );
        let packs = inspect.assert_ok().json()["packs"].clone();
        assert_eq!(packs[0]["name"], "aws");
        assert_eq!(packs[1]["name"], "zabbix");
        assert_eq!(packs[1]["runtime"]["python"], "3.8");
    }

    #[test]
    fn fewer_than_two_images_unreadable_references_and_plain_images_are_usage_errors() {
        let sandbox = Sandbox::new();
        let cache = sandbox.cache();
        merge(&sandbox, &cache, &["oci:/nonexistent:1", "--tag", "x:1"])
            .assert_code(2)
            .assert_stderr_has("needs at least two images, got only oci:/nonexistent:1");
        merge(&sandbox, &cache, &["--tag", "x:1"])
            .assert_code(2)
            .assert_stderr_has("needs at least two images, got none");
        merge(&sandbox, &cache, &["Not A Ref", "x:1", "--tag", "x:1"])
            .assert_code(2)
            .assert_stderr_has("Not A Ref");

        let registry = TestRegistry::start_plain();
        let base = push_busybox_base(&sandbox, &registry);
        let missing = format!("{}/st2/nothing:1", registry.host());
        merge(&sandbox, &cache, &[&missing, &base, "--tag", "x:1"])
            .assert_code(2)
            .assert_stderr_has(&missing);
        merge(&sandbox, &cache, &[&base, &base, "--tag", "x:1"])
            .assert_code(2)
            .assert_stderr_has(&format!("{base} is not a pack image"));
    }
}
