//! `st2pack cache dir|info|prune` against caches filled by real builds: a fixture pack from a
//! git repository, virtualenvs from the offline wheelhouse, images written to OCI layouts and
//! read back with skopeo.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use filetime::{FileTime, set_file_mtime};
use serde_json::Value;

use common::repos::pack_repo;
use common::run::{Run, Sandbox};

const BUCKETS: [&str; 7] = [
    "git",
    "virtualenvs",
    "bytecode",
    "blobs",
    "layers",
    "segments",
    "build-roots",
];

fn st2pack(sandbox: &Sandbox, args: &[&str]) -> Run {
    Run::from(st2pack_command(sandbox, args).output().unwrap())
}

fn st2pack_command(sandbox: &Sandbox, args: &[&str]) -> Command {
    let mut command = sandbox.command(env!("CARGO_BIN_EXE_st2pack"), &[]);
    command.env_remove("ST2PACK_CACHE_DIR").args(args);
    command
}

fn cache_command(sandbox: &Sandbox, args: &[&str]) -> Command {
    let mut command = st2pack_command(sandbox, &["cache"]);
    command.args(args).arg("--cache-dir").arg(sandbox.cache());
    command
}

fn cache(sandbox: &Sandbox, args: &[&str]) -> Run {
    Run::from(cache_command(sandbox, args).output().unwrap())
}

/// A sandbox with a busybox base layout and a git repository of the `with_reqs` pack.
struct Fixture {
    sandbox: Sandbox,
    repo: PathBuf,
    base: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let sandbox = Sandbox::new();
        let base = sandbox.path().join("base");
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
                &format!("oci:{}", base.display()),
            ],
        )
        .assert_ok();
        let repo = pack_repo(sandbox.path(), "with_reqs", &["0.3.0"]);
        Fixture {
            sandbox,
            repo,
            base,
        }
    }

    /// `st2pack build` of the pack into the OCI layout `out`, with the sandbox's cache.
    fn build_command(&self, out: &str) -> Command {
        let layout = self.sandbox.path().join(out);
        let mut command = self.sandbox.build_command(&self.sandbox.cache(), &[]);
        command.args([
            &format!("file://{}", self.repo.display()),
            "--base",
            &format!("oci:{}:1", self.base.display()),
            "--tag",
            "st2packs:1.0",
            "--output",
            &format!("oci:{}", layout.display()),
        ]);
        command
    }

    /// Builds into `out`, checks the image with skopeo, and returns its digest.
    fn build(&self, out: &str) -> String {
        let run = Run::from(self.build_command(out).output().unwrap());
        run.assert_ok();
        let digest = run.stdout.trim().to_string();
        assert_valid_image(&self.sandbox.path().join(out), &digest);
        digest
    }

    fn info(&self) -> Value {
        let run = cache(&self.sandbox, &["info", "--json"]);
        run.assert_ok();
        run.json()
    }
}

/// skopeo reads the layout's image (manifest and config) and copies every blob, checking each
/// against its digest.
fn assert_valid_image(layout: &Path, digest: &str) {
    let reference = format!("oci:{}:1.0", layout.display());
    let output = Command::new("skopeo")
        .args(["inspect", &reference])
        .output()
        .expect("skopeo is installed");
    assert!(
        output.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let inspected: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(inspected["Digest"], digest);
    let copy = layout.with_extension("copy");
    let output = Command::new("skopeo")
        .args(["copy", &reference])
        .arg(format!("oci:{}:1.0", copy.display()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "skopeo copy {reference}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&copy);
}

fn bucket<'a>(info: &'a Value, name: &str) -> &'a Value {
    info["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no bucket {name} in {info:#}"))
}

fn entries(info: &Value, name: &str) -> u64 {
    bucket(info, name)["entries"].as_u64().unwrap()
}

/// The entries of a bucket, as the cache lays them out.
fn entry_paths(info: &Value, name: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(bucket(info, name)["dir"].as_str().unwrap());
    let parents = match name {
        "blobs" => vec![dir.join("sha256")],
        "bytecode" => children(&dir),
        _ => vec![dir],
    };
    parents
        .iter()
        .flat_map(|parent| children(parent))
        .filter(|path| {
            let file_name = path.file_name().unwrap().to_string_lossy();
            !file_name.starts_with('.') && !file_name.ends_with(".lock")
        })
        .collect()
}

fn children(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

fn age(paths: &[PathBuf], days: u64) {
    let then = SystemTime::now() - Duration::from_secs(days * 24 * 3600);
    for path in paths {
        set_file_mtime(path, FileTime::from_system_time(then)).unwrap();
    }
}

/// Holds the cache's lock shared, the way every command that uses the cache does.
fn hold_shared(sandbox: &Sandbox) -> File {
    let file = File::options()
        .read(true)
        .write(true)
        .open(sandbox.cache().join(".lock"))
        .expect("a build created the lock file");
    file.lock_shared().unwrap();
    file
}

#[test]
fn dir_prints_the_cache_directory_without_creating_it() {
    let sandbox = Sandbox::new();
    let run = cache(&sandbox, &["dir"]);
    run.assert_ok();
    assert_eq!(run.stdout.trim(), sandbox.cache().display().to_string());

    let from_env = sandbox.path().join("from-env");
    let mut command = st2pack_command(&sandbox, &["cache", "dir"]);
    command.env("ST2PACK_CACHE_DIR", &from_env);
    let run = Run::from(command.output().unwrap());
    run.assert_ok();
    assert_eq!(run.stdout.trim(), from_env.display().to_string());

    // The default follows XDG_CACHE_HOME, which the sandbox sets.
    let run = st2pack(&sandbox, &["cache", "dir"]);
    run.assert_ok();
    let default = sandbox.path().join("xdg-cache/st2pack");
    assert_eq!(run.stdout.trim(), default.display().to_string());
    assert!(!sandbox.cache().exists() && !from_env.exists() && !default.exists());
}

#[test]
fn info_shows_what_a_build_put_in_every_bucket() {
    let fixture = Fixture::new();
    fixture.build("out");

    let info = fixture.info();
    assert_eq!(info["dir"], fixture.sandbox.cache().display().to_string());
    for name in BUCKETS {
        let bucket = bucket(&info, name);
        assert!(bucket["entries"].as_u64().unwrap() >= 1, "{bucket}");
        assert!(bucket["bytes"].as_u64().unwrap() > 0, "{bucket}");
        let dir = bucket["dir"].as_str().unwrap();
        assert!(Path::new(dir).is_dir(), "{dir}");
        assert!(
            dir.starts_with(&fixture.sandbox.cache().display().to_string()),
            "{dir}"
        );
    }
    assert!(info["total_bytes"].as_u64().unwrap() > 0);

    let run = cache(&fixture.sandbox, &["info"]);
    run.assert_ok();
    for name in BUCKETS {
        assert!(
            run.stdout.lines().any(|line| line.starts_with(name)),
            "{name} missing:\n{}",
            run.stdout
        );
    }
    assert!(run.stdout.contains("total"), "{}", run.stdout);
    assert!(run.stdout.contains("KiB"), "{}", run.stdout);
}

#[test]
fn prune_waits_for_a_command_using_the_cache_then_empties_it_and_the_next_build_matches() {
    let fixture = Fixture::new();
    let sandbox = &fixture.sandbox;
    let digest = fixture.build("out");
    let before = fixture.info();

    let held = hold_shared(sandbox);
    // With no time to wait, the prune gives up and removes nothing.
    cache(
        sandbox,
        &["prune", "--max-size", "0", "--lock-timeout", "0"],
    )
    .assert_code(1)
    .assert_stderr_has("--lock-timeout");
    // With time, it says it is waiting, and waits.
    let mut prune = cache_command(sandbox, &["prune", "--max-size", "0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(prune.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("waiting for the st2pack commands"), "{line}");
    let during = fixture.info();
    for name in BUCKETS {
        assert_eq!(entries(&during, name), entries(&before, name), "{name}");
    }
    drop(held);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(prune.wait().unwrap().success(), "{rest}");
    assert!(rest.contains("removed"), "{rest}");

    let after = fixture.info();
    for name in BUCKETS {
        assert_eq!(entries(&after, name), 0, "{name}: {after:#}");
    }
    assert_eq!(after["total_bytes"], 0, "{after:#}");
    // The image written before still holds every blob (the layout has its own links).
    assert_valid_image(&sandbox.path().join("out"), &digest);

    // An empty cache builds the same image again.
    assert_eq!(fixture.build("again"), digest);
}

#[test]
fn a_build_and_a_prune_side_by_side_both_succeed() {
    let fixture = Fixture::new();
    let digest = fixture.build("first");
    // Whichever takes the cache first, the other waits: the build is whole either way.
    let build = fixture
        .build_command("second")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let prune = cache(&fixture.sandbox, &["prune", "--max-size", "0"]);
    let built = Run::from(build.wait_with_output().unwrap());
    prune.assert_ok();
    built.assert_ok();
    assert_eq!(built.stdout.trim(), digest);
    assert_valid_image(&fixture.sandbox.path().join("second"), &digest);
    assert_eq!(fixture.build("third"), digest);
}

#[test]
fn older_than_removes_only_entries_unused_for_that_long() {
    let fixture = Fixture::new();
    let sandbox = &fixture.sandbox;
    let digest = fixture.build("out");
    let before = fixture.info();

    age(&entry_paths(&before, "virtualenvs"), 40);
    age(&entry_paths(&before, "git"), 29);
    cache(sandbox, &["prune", "--older-than", "30"]).assert_ok();
    let after = fixture.info();
    assert_eq!(entries(&after, "virtualenvs"), 0);
    for name in BUCKETS.iter().filter(|n| **n != "virtualenvs") {
        assert_eq!(entries(&after, name), entries(&before, name), "{name}");
    }

    // Without options, a prune removes what was unused for 30 days.
    age(&entry_paths(&after, "git"), 31);
    cache(sandbox, &["prune"]).assert_ok();
    assert_eq!(entries(&fixture.info(), "git"), 0);
    assert_eq!(fixture.build("again"), digest);
}

#[test]
fn a_build_marks_the_entries_it_uses_as_used() {
    let fixture = Fixture::new();
    let digest = fixture.build("out");
    // A second build confirms the layer record the first one wrote (see the layer cache's
    // racy entries), so that the third only reads it.
    assert_eq!(fixture.build("confirmed"), digest);
    let before = fixture.info();
    // Bytecode shares its files with the installed virtualenvs, whose times the layer cache
    // watches: it is left as it is.
    let reused = ["git", "virtualenvs", "blobs", "layers", "build-roots"];
    for name in reused {
        age(&entry_paths(&before, name), 40);
    }
    // Nothing changed: the pack is not reinstalled (its cached virtualenv is still the one in
    // place, so it counts as used), and its layer comes from the layer cache.
    assert_eq!(fixture.build("again"), digest);
    cache(&fixture.sandbox, &["prune", "--older-than", "30"]).assert_ok();
    let after = fixture.info();
    for name in reused {
        assert_eq!(entries(&after, name), entries(&before, name), "{name}");
    }
}

#[test]
fn bad_sizes_and_ages_are_usage_errors_naming_the_value() {
    let sandbox = Sandbox::new();
    cache(&sandbox, &["prune", "--max-size", "abc"])
        .assert_code(2)
        .assert_stderr_has("abc");
    cache(&sandbox, &["prune", "--older-than", "soon"])
        .assert_code(2)
        .assert_stderr_has("soon");
    assert!(!sandbox.cache().exists());
    // No cache yet: nothing to do, and nothing created.
    cache(&sandbox, &["prune", "--max-size", "0"])
        .assert_ok()
        .assert_stderr_has("nothing to prune");
    assert!(!sandbox.cache().exists());
}
