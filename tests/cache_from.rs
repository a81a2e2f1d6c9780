//! `st2pack build --cache-from`: a previous image in a real docker-registry as the only cache of
//! a build on an empty cache directory, with packs in real git repositories served by
//! `git daemon` (two of them through an Exchange index, as another pack's dependencies). What
//! was uploaded and downloaded is read from the registry's own access log.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::registry::TestRegistry;
use common::repos::{bare_clone, copy_fixture, git, pack_repo, set_version, write_index};
use common::run::{Run, Sandbox};
use common::servers::GitDaemon;
use common::wheel::build_wheel;

fn st2pack(sandbox: &Sandbox, args: &[&str]) -> Run {
    let mut command = sandbox.command(env!("CARGO_BIN_EXE_st2pack"), &[]);
    command.args(args);
    Run::from(command.output().unwrap())
}

/// `st2pack build` for this machine's interpreter with the offline wheelhouse, on the cache
/// directory `cache`.
fn build(sandbox: &Sandbox, cache: &Path, args: &[&str]) -> Run {
    build_with(sandbox, cache, args, &[])
}

/// [`build`] with environment variables.
fn build_with(sandbox: &Sandbox, cache: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = sandbox.build_command(cache, env);
    command.args(args);
    Run::from(command.output().unwrap())
}

/// A fresh, empty cache directory of the sandbox.
fn empty_cache(sandbox: &Sandbox, name: &str) -> PathBuf {
    let dir = sandbox.path().join(name);
    assert!(!dir.exists());
    dir
}

/// Five packs in git: `hello_deps`, `alpha` and `beta` named on the command line,
/// `hello_st2` and `with_reqs` (a requirement from the wheelhouse) as hello_deps's dependencies
/// through the index.
struct Packs {
    work: PathBuf,
    served: PathBuf,
    daemon: GitDaemon,
    index_url: String,
}

impl Packs {
    fn new(sandbox: &Sandbox) -> Packs {
        let work = sandbox.path().join("work");
        let served = sandbox.path().join("served");
        fs::create_dir_all(&work).unwrap();
        fs::create_dir_all(&served).unwrap();
        for (name, version) in [
            ("hello_st2", "1.1.0"),
            ("with_reqs", "0.3.0"),
            ("hello_deps", "0.2.0"),
        ] {
            let repo = pack_repo(&work, name, &[version]);
            bare_clone(&repo, &served, name);
        }
        for name in ["alpha", "beta"] {
            let repo = renamed_hello(&work, name);
            bare_clone(&repo, &served, name);
        }
        let daemon = GitDaemon::serve(&served);
        let index = sandbox.path().join("index.json");
        write_index(
            &index,
            &[
                ("hello_st2", &daemon.url("hello_st2.git"), "1.1.0"),
                ("with_reqs", &daemon.url("with_reqs.git"), "0.3.0"),
            ],
        );
        Packs {
            work,
            served,
            daemon,
            index_url: format!("file://{}", index.display()),
        }
    }

    /// The build's arguments before the image options.
    fn args(&self) -> Vec<String> {
        vec![
            "--index-url".to_string(),
            self.index_url.clone(),
            self.daemon.url("hello_deps.git"),
            self.daemon.url("alpha.git"),
            self.daemon.url("beta.git"),
        ]
    }

    /// Commits a new version of pack `name` and publishes it.
    fn change(&self, name: &str, version: &str) {
        let repo = self.work.join(name);
        set_version(&repo, version);
        git(&repo, &["commit", "-q", "-am", "new version"]);
        let bare = self.served.join(format!("{name}.git"));
        git(&repo, &["push", "-q", bare.to_str().unwrap(), "main"]);
    }
}

/// A git work tree of the hello_st2 fixture named `name`.
fn renamed_hello(root: &Path, name: &str) -> PathBuf {
    let repo = root.join(name);
    copy_fixture("hello_st2", &repo);
    let manifest = repo.join("pack.yaml");
    let text = fs::read_to_string(&manifest)
        .unwrap()
        .replace("ref: hello_st2", &format!("ref: {name}"))
        .replace("name: hello_st2", &format!("name: {name}"));
    fs::write(&manifest, text).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    repo
}

fn push_busybox_base(sandbox: &Sandbox, registry: &TestRegistry) -> String {
    let base = format!("{}/st2/busybox:1", registry.host());
    let cache = sandbox.path().join("base-cache");
    st2pack(
        sandbox,
        &[
            "base-image",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--tag",
            &base,
            "--push",
        ],
    )
    .assert_ok();
    base
}

fn with(mut args: Vec<String>, more: &[&str]) -> Vec<String> {
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// `(name, layer_source, layer_from)` of each pack of a `--json` summary, for the pack's layer
/// and its virtualenv's alike (a pack whose two layers differ in origin shows as `mixed`).
fn sources(summary: &serde_json::Value) -> Vec<(String, String, Option<String>)> {
    layer_sources(summary)
        .into_iter()
        .map(|(name, pack, venv)| {
            if pack == venv {
                (name, pack.0, pack.1)
            } else {
                (name, "mixed".to_string(), None)
            }
        })
        .collect()
}

type Origin = (String, Option<String>);

/// `(name, (source, from) of the pack's layer, (source, from) of its virtualenv's)` of each
/// pack of a `--json` summary.
fn layer_sources(summary: &serde_json::Value) -> Vec<(String, Origin, Origin)> {
    let origin = |layer: &serde_json::Value| {
        (
            layer["layer_source"].as_str().unwrap().to_string(),
            layer["layer_from"].as_str().map(str::to_string),
        )
    };
    summary["packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(
                p["virtualenv"].is_object(),
                "every pack has a virtualenv: {p}"
            );
            (
                p["name"].as_str().unwrap().to_string(),
                origin(p),
                origin(&p["virtualenv"]),
            )
        })
        .collect()
}

fn skopeo(args: &[&str]) -> String {
    let out = std::process::Command::new("skopeo")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The layer digests of a pushed image, from its manifest.
fn layers_of(reference: &str) -> Vec<String> {
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]);
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// Blob requests `METHOD /v2/.../blobs/<digest>` in the access log lines after `skip`.
fn blob_requests(registry: &TestRegistry, skip: usize, method: &str) -> Vec<String> {
    registry
        .access_log()
        .lines()
        .skip(skip)
        .filter_map(|line| {
            let request = line.split('"').nth(1)?;
            let mut parts = request.split(' ');
            (parts.next() == Some(method)).then_some(())?;
            let path = parts.next()?;
            let (_, digest) = path.split_once("/blobs/")?;
            digest.starts_with("sha256:").then(|| digest.to_string())
        })
        .collect()
}

#[test]
fn a_build_from_the_previous_image_installs_and_uploads_only_the_changed_pack() {
    let sandbox = Sandbox::new();
    let registry = TestRegistry::start_plain();
    let base = push_busybox_base(&sandbox, &registry);
    let packs = Packs::new(&sandbox);
    let first_tag = format!("{}/st2/packs:1", registry.host());
    let image = |tag: &str| -> Vec<String> {
        with(
            packs.args(),
            &["--base", &base, "--tag", tag, "--push", "--json"],
        )
    };
    let first = build(
        &sandbox,
        &empty_cache(&sandbox, "cache-1"),
        &strs(&image(&first_tag)),
    );
    first.assert_ok();
    let first_sources = sources(&first.json());
    assert_eq!(first_sources.len(), 5, "{first_sources:?}");
    assert!(
        first_sources.iter().all(|(_, source, _)| source == "built"),
        "{first_sources:?}"
    );
    let first_layers = layers_of(&first_tag);

    packs.change("alpha", "1.2.0");

    // An empty cache directory: the previous image is the only cache.
    let log_before = registry.access_log().lines().count();
    let uploads_before = registry.upload_count_in("st2/packs");
    let second_tag = format!("{}/st2/packs:2", registry.host());
    let second = build(
        &sandbox,
        &empty_cache(&sandbox, "cache-2"),
        &strs(&with(image(&second_tag), &["--cache-from", &first_tag])),
    );
    second.assert_ok();
    let summary = second.json();
    let from = Some(first_tag.clone());
    // alpha's commit changed, not its requirements: its own layer is built, its virtualenv's
    // is the previous image's.
    assert_eq!(
        layer_sources(&summary)[0],
        (
            "alpha".to_string(),
            ("built".to_string(), None),
            ("cache-from".to_string(), from.clone())
        )
    );
    second.assert_stderr_has("alpha 1.2.0: virtualenv layer taken from");
    // Only alpha was installed in this run.
    let installed: Vec<(&str, bool)> = summary["packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["installed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        installed,
        [
            ("alpha", true),
            ("beta", false),
            ("hello_deps", false),
            ("hello_st2", false),
            ("with_reqs", false)
        ]
    );
    assert_eq!(
        sources(&summary),
        [
            ("alpha".to_string(), "mixed".to_string(), None),
            ("beta".to_string(), "cache-from".to_string(), from.clone()),
            (
                "hello_deps".to_string(),
                "cache-from".to_string(),
                from.clone()
            ),
            (
                "hello_st2".to_string(),
                "cache-from".to_string(),
                from.clone()
            ),
            (
                "with_reqs".to_string(),
                "cache-from".to_string(),
                from.clone()
            ),
        ]
    );
    second.assert_stderr_has("hello_st2 1.1.0: layers taken from");
    // Only alpha was installed into the build root.
    let installed = installed_packs(&sandbox.path().join("cache-2"));
    assert_eq!(
        installed,
        ["alpha"],
        "packs installed by the cache-from build"
    );

    // The registry saw one layer (alpha's own) and one config uploaded, and no layer downloaded:
    // neither the taken layers nor the base's (a config, the base's and the image's, may be
    // read).
    assert_eq!(summary["pushed"][0]["uploaded"], 2, "{summary}");
    assert_eq!(
        registry.upload_count_in("st2/packs") - uploads_before,
        2,
        "exactly one layer blob and the config were uploaded"
    );
    let downloaded = blob_requests(&registry, log_before, "GET");
    let base_layers = layers_of(&base);
    let layers_downloaded: Vec<&String> = downloaded
        .iter()
        .filter(|d| first_layers.contains(d) || base_layers.contains(d))
        .collect();
    assert!(
        layers_downloaded.is_empty(),
        "layers downloaded: {layers_downloaded:?}"
    );

    // The same image as a full build of the same pins, on another empty cache directory.
    let full_tag = format!("{}/st2/packs:full", registry.host());
    let full = build(
        &sandbox,
        &empty_cache(&sandbox, "cache-3"),
        &strs(&image(&full_tag)),
    );
    full.assert_ok();
    assert_eq!(full.json()["digest"], summary["digest"]);
    assert!(
        sources(&full.json())
            .iter()
            .all(|(_, source, _)| source == "built")
    );

    // alpha's virtualenv directory in the cache-from build's root is empty, so the next build
    // there without --cache-from builds it, and makes the same image again.
    let again = build(
        &sandbox,
        &sandbox.path().join("cache-2"),
        &strs(&image(&format!("{}/st2/packs:again", registry.host()))),
    );
    again.assert_ok();
    assert_eq!(again.json()["digest"], summary["digest"]);
    assert_eq!(
        layer_sources(&again.json())[0].2,
        ("built".to_string(), None),
        "alpha's virtualenv"
    );

    // To another repository of the registry, the taken layers are mounted, and written to an
    // OCI layout they are downloaded: the same image either way.
    let mounts_before = registry.mount_count();
    let layout = sandbox.path().join("layout");
    let other_tag = format!("{}/st2/other:1", registry.host());
    let other = build(
        &sandbox,
        &empty_cache(&sandbox, "cache-4"),
        &strs(&with(
            packs.args(),
            &[
                "--base",
                &base,
                "--tag",
                &other_tag,
                "--push",
                "--json",
                "--cache-from",
                &second_tag,
                "--output",
                &format!("oci:{}", layout.display()),
            ],
        )),
    );
    other.assert_ok();
    let other_summary = other.json();
    assert_eq!(other_summary["digest"], summary["digest"]);
    assert!(
        sources(&other_summary)
            .iter()
            .all(|(_, source, _)| source == "cache-from"),
        "{other_summary}"
    );
    assert_eq!(other_summary["pushed"][0]["uploaded"], 1, "the config only");
    assert!(registry.mount_count() - mounts_before >= 10);
    // Every blob is in the layout: skopeo copies the image out of it, checking each digest.
    let layout_ref = format!("oci:{}:1", layout.display());
    let copied = sandbox.path().join("copied");
    skopeo(&["copy", &layout_ref, &format!("dir:{}", copied.display())]);
    let inspected: serde_json::Value =
        serde_json::from_str(&skopeo(&["inspect", &layout_ref])).unwrap();
    assert_eq!(inspected["Digest"], summary["digest"]);
}

/// The packs in the build roots of the cache directory `cache`.
fn installed_packs(cache: &Path) -> Vec<String> {
    let entries = |dir: &Path| -> Vec<PathBuf> {
        fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    let mut names: Vec<String> = entries(cache)
        .into_iter()
        .filter(|bucket| {
            bucket
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("build-roots")
        })
        .flat_map(|bucket| entries(&bucket))
        .flat_map(|root| entries(&root.join("packs")))
        .map(|pack| pack.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    names
}

#[test]
fn an_image_that_is_missing_or_not_a_pack_image_is_a_warning_and_everything_is_built() {
    let sandbox = Sandbox::new();
    let registry = TestRegistry::start_plain();
    let base = push_busybox_base(&sandbox, &registry);
    let repo = pack_repo(sandbox.path(), "hello_st2", &["1.1.0"]);
    let missing = format!("{}/st2/nothing:1", registry.host());
    let layout = sandbox.path().join("layout");
    let run = build(
        &sandbox,
        &empty_cache(&sandbox, "cache"),
        &[
            &format!("file://{}", repo.display()),
            "--base",
            &base,
            "--tag",
            "st2packs:1",
            "--output",
            &format!("oci:{}", layout.display()),
            "--json",
            "--cache-from",
            &base,
            "--cache-from",
            &missing,
            "--cache-from",
            &format!("oci:{}", sandbox.path().join("no-layout").display()),
        ],
    );
    run.assert_ok()
        .assert_stderr_has(&format!(
            "warning: --cache-from {base}: it is not a pack image"
        ))
        .assert_stderr_has(&format!("warning: --cache-from {missing}: "))
        .assert_stderr_has("warning: --cache-from oci:");
    assert_eq!(
        sources(&run.json()),
        [("hello_st2".to_string(), "built".to_string(), None)]
    );

    // A typo is bad usage, before any work.
    build(
        &sandbox,
        &empty_cache(&sandbox, "cache-typo"),
        &[
            "hello_st2",
            "--tag",
            "st2packs:1",
            "--cache-from",
            "Not A Ref",
        ],
    )
    .assert_code(2)
    .assert_stderr_has("--cache-from \"Not A Ref\"");
}

/// `oci:DIR:1` for the layout `name` of the sandbox.
fn layout_of(sandbox: &Sandbox, name: &str) -> String {
    format!("oci:{}:1", sandbox.path().join(name).display())
}

/// The arguments of a build of `spec` on scratch into the layout `name`, with `more`.
fn to_layout(sandbox: &Sandbox, spec: &str, name: &str, more: &[&str]) -> Vec<String> {
    let mut args = [
        spec,
        "--base",
        "scratch",
        "--tag",
        "st2packs:1",
        "--json",
        "--output",
    ]
    .map(String::from)
    .to_vec();
    args.push(layout_of(sandbox, name));
    with(args, more)
}

/// A layer is taken only from an image built with the same settings: another compression or
/// another SOURCE_DATE_EPOCH builds the pack again. Images in OCI layouts work as REFs too.
#[test]
fn a_layer_is_taken_only_when_the_build_settings_match() {
    let sandbox = Sandbox::new();
    let repo = pack_repo(sandbox.path(), "with_reqs", &["0.3.0"]);
    let spec = format!("file://{}", repo.display());
    let layout = |name: &str| layout_of(&sandbox, name);
    let image = |name: &str, more: &[&str]| to_layout(&sandbox, &spec, name, more);
    let first = build(
        &sandbox,
        &empty_cache(&sandbox, "cache-1"),
        &strs(&image("first", &[])),
    );
    first.assert_ok();
    let previous = layout("first");

    let taken = build(
        &sandbox,
        &empty_cache(&sandbox, "cache-2"),
        &strs(&image("taken", &["--cache-from", &previous])),
    );
    taken.assert_ok();
    assert_eq!(
        sources(&taken.json()),
        [(
            "with_reqs".to_string(),
            "cache-from".to_string(),
            Some(previous.clone())
        )]
    );
    assert_eq!(taken.json()["digest"], first.json()["digest"]);

    let zstd = build(
        &sandbox,
        &empty_cache(&sandbox, "cache-3"),
        &strs(&image(
            "zstd",
            &["--cache-from", &previous, "--compression", "zstd"],
        )),
    );
    let epoch = build_with(
        &sandbox,
        &empty_cache(&sandbox, "cache-4"),
        &strs(&image("epoch", &["--cache-from", &previous])),
        &[("SOURCE_DATE_EPOCH", "1700000000")],
    );
    for run in [zstd, epoch] {
        run.assert_ok();
        assert_eq!(
            sources(&run.json()),
            [("with_reqs".to_string(), "built".to_string(), None)]
        );
    }
}

/// A pack whose commit changed takes its virtualenv's layer only while its requirements are
/// the same; the root such a build installed into cannot be layered again as it is.
#[test]
fn a_changed_pack_takes_its_virtualenv_layer_only_while_its_requirements_are_the_same() {
    let sandbox = Sandbox::new();
    let repo = pack_repo(sandbox.path(), "with_reqs", &["0.3.0"]);
    let spec = format!("file://{}", repo.display());
    let layout = |name: &str| layout_of(&sandbox, name);
    let image = |name: &str, more: &[&str]| to_layout(&sandbox, &spec, name, more);
    let commit = |message: &str| {
        git(&repo, &["commit", "-q", "-am", message]);
    };
    build(
        &sandbox,
        &empty_cache(&sandbox, "cache-1"),
        &strs(&image("first", &[])),
    )
    .assert_ok();

    // The pack's code changed: its virtualenv's layer is taken, its own is built.
    fs::write(repo.join("actions/extra.py"), "X = 1\n").unwrap();
    git(&repo, &["add", "-A"]);
    commit("code only");
    let root = sandbox.path().join("root");
    let code_only = build(
        &sandbox,
        &empty_cache(&sandbox, "cache-2"),
        &strs(&image(
            "code-only",
            &[
                "--cache-from",
                &layout("first"),
                "--root",
                root.to_str().unwrap(),
            ],
        )),
    );
    code_only.assert_ok();
    assert_eq!(
        layer_sources(&code_only.json()),
        [(
            "with_reqs".to_string(),
            ("built".to_string(), None),
            ("cache-from".to_string(), Some(layout("first")))
        )]
    );
    let venv = root.join("virtualenvs/with_reqs");
    assert_eq!(
        fs::read_dir(&venv).unwrap().count(),
        0,
        "no virtualenv built"
    );

    // That root holds no virtualenv for the pack: layering it as it is would ship none.
    build(
        &sandbox,
        &sandbox.path().join("cache-2"),
        &[
            "--root",
            root.to_str().unwrap(),
            "--tag",
            "st2packs:1",
            "--output",
            &layout("tree"),
        ],
    )
    .assert_code(2)
    .assert_stderr_has("the virtualenv of pack with_reqs is not there")
    .assert_stderr_has("Give the pack to st2pack build");
    assert!(!sandbox.path().join("tree").exists(), "nothing written");
    // As it says: given the pack, a build there builds the virtualenv, and makes the same image.
    let rebuilt = build(
        &sandbox,
        &sandbox.path().join("cache-2"),
        &strs(&image("rebuilt", &["--root", root.to_str().unwrap()])),
    );
    rebuilt.assert_ok();
    assert_eq!(rebuilt.json()["digest"], code_only.json()["digest"]);
    assert_eq!(
        layer_sources(&rebuilt.json())[0].2,
        ("built".to_string(), None)
    );
    assert!(venv.join("pyvenv.cfg").is_file());

    // Its requirements changed: both layers are built.
    let requirements = repo.join("requirements.txt");
    let text = fs::read_to_string(&requirements).unwrap();
    fs::write(&requirements, format!("# pinned by ops\n{text}")).unwrap();
    commit("requirements");
    let requirements_changed = build(
        &sandbox,
        &empty_cache(&sandbox, "cache-3"),
        &strs(&image(
            "requirements",
            &["--cache-from", &layout("code-only")],
        )),
    );
    requirements_changed.assert_ok();
    assert_eq!(
        layer_sources(&requirements_changed.json()),
        [(
            "with_reqs".to_string(),
            ("built".to_string(), None),
            ("built".to_string(), None)
        )]
    );
}

/// A pack that ships its own wheels (`--find-links ./wheels`, allowed with
/// `--allow-pack-index-options`) gets a new virtualenv when a commit adds a wheel there, though
/// its requirements' text is the same: what a local `--find-links` offers is an input of the
/// virtualenv, for `--cache-from` and for the local virtualenv cache alike.
#[test]
fn a_new_wheel_the_pack_ships_is_a_new_virtualenv() {
    let sandbox = Sandbox::new();
    let repo = sandbox.path().join("shipped");
    copy_fixture("with_reqs", &repo);
    build_wheel(
        &repo.join("wheels"),
        "st2pack-shipped-lib",
        "1.0",
        &[("shipped_lib.py", "VERSION = '1.0'\n")],
        &[],
        &[],
    );
    fs::write(
        repo.join("requirements.txt"),
        "--find-links ./wheels\nst2pack-shipped-lib\n",
    )
    .unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "1.0"]);
    let spec = format!("file://{}", repo.display());
    let allow = "--allow-pack-index-options";
    let cache = sandbox.path().join("cache-1");
    build(
        &sandbox,
        &cache,
        &strs(&to_layout(&sandbox, &spec, "first", &[allow])),
    )
    .assert_ok();

    // A commit that only adds the next version's wheel.
    build_wheel(
        &repo.join("wheels"),
        "st2pack-shipped-lib",
        "1.1",
        &[("shipped_lib.py", "VERSION = '1.1'\n")],
        &[],
        &[],
    );
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "1.1"]);
    let taken = build(
        &sandbox,
        &empty_cache(&sandbox, "cache-2"),
        &strs(&to_layout(
            &sandbox,
            &spec,
            "second",
            &[allow, "--cache-from", &layout_of(&sandbox, "first")],
        )),
    );
    taken.assert_ok();
    assert_eq!(
        layer_sources(&taken.json())[0].2,
        ("built".to_string(), None),
        "the virtualenv is built again: {}",
        taken.stderr
    );
    let full = build(
        &sandbox,
        &empty_cache(&sandbox, "cache-3"),
        &strs(&to_layout(&sandbox, &spec, "full", &[allow])),
    );
    full.assert_ok();
    assert_eq!(taken.json()["digest"], full.json()["digest"]);
    // The build root the first build used, with its virtualenv cache: the new wheel too.
    let local = build(
        &sandbox,
        &cache,
        &strs(&to_layout(&sandbox, &spec, "local", &[allow])),
    );
    local.assert_ok();
    assert_eq!(local.json()["digest"], full.json()["digest"]);
    let installed = sandbox
        .path()
        .join("cache-3/build-roots-v1/default/virtualenvs/with_reqs");
    let found = walkdir::WalkDir::new(&installed)
        .into_iter()
        .filter_map(Result::ok)
        .any(|e| e.file_name() == "st2pack_shipped_lib-1.1.dist-info");
    assert!(found, "version 1.1 is installed in {}", installed.display());
}
