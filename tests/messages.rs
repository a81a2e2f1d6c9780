//! Messages that name what actually went wrong: bad input is bad usage (exit 2), a full disk is
//! named as such, at the place that is full, and a file name is shown as text, never as bytes.
//! Full disks are real: a small tmpfs mounted in a
//! private mount namespace (`unshare -m`) that disappears with the process.

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use common::repos::{copy_fixture, git, pack_repo};
use common::run::{Run, Sandbox};

#[test]
fn an_index_url_that_is_not_a_url_is_bad_usage() {
    let sandbox = Sandbox::new();
    let run = sandbox.install(&["--index-url", "notaurl", "hello_st2"]);
    run.assert_code(2).assert_stderr_has("index URL `notaurl`");
    assert!(!sandbox.packs().join("hello_st2").exists());
}

/// Whether this machine lets a test mount a tmpfs in its own mount namespace (root does).
fn can_mount() -> bool {
    let ok = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("!!! cannot mount a tmpfs with `unshare -m`: SKIPPING the full-disk test !!!");
    }
    ok
}

/// `st2-pack-install` with `full` mounted as a tmpfs of `size` in a private mount namespace.
fn install_on_full_disk(sandbox: &Sandbox, full: &Path, size: &str, args: &[&str]) -> Run {
    fs::create_dir_all(full).unwrap();
    let mut command = sandbox.command("unshare", &[]);
    command
        .args([
            "-m",
            "sh",
            "-ec",
            "mount -t tmpfs -o \"size=$1\" tmpfs \"$2\"; shift 2; exec \"$@\"",
        ])
        .arg("sh")
        .arg(size)
        .arg(full)
        .arg(env!("CARGO_BIN_EXE_st2-pack-install"))
        .args(args);
    Run::from(command.output().expect("unshare runs"))
}

#[test]
fn a_full_disk_names_the_destination_of_the_copy() {
    if !can_mount() {
        return;
    }
    let sandbox = Sandbox::new();
    let pack = sandbox.path().join("src/hello_st2");
    fs::create_dir_all(pack.parent().unwrap()).unwrap();
    copy_fixture("hello_st2", &pack);
    fs::write(pack.join("big.bin"), vec![7u8; 1 << 20]).unwrap();
    let packs = sandbox.packs();
    let venvs = sandbox.venvs();
    let cache = sandbox.cache();
    let run = install_on_full_disk(
        &sandbox,
        &packs,
        "256k",
        &[
            "--packs-dir",
            packs.to_str().unwrap(),
            "--virtualenvs-dir",
            venvs.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--no-base-requirements",
            pack.to_str().unwrap(),
        ],
    );
    run.assert_code(1);
    let failure = run
        .stderr
        .lines()
        .find(|l| l.starts_with("FAILED"))
        .unwrap_or_else(|| panic!("no failure line:\n{}", run.stderr));
    let destination = format!("{}/.st2pack-staging/", packs.display());
    assert!(
        failure.contains(&destination) && failure.contains("No space left on device"),
        "{failure}"
    );
}

#[test]
fn the_pip_engine_on_a_full_disk_says_the_disk_is_full() {
    if !can_mount() {
        return;
    }
    let sandbox = Sandbox::new();
    let pack = sandbox.path().join("src/with_reqs");
    fs::create_dir_all(pack.parent().unwrap()).unwrap();
    copy_fixture("with_reqs", &pack);
    let packs = sandbox.packs();
    let venvs = sandbox.venvs();
    let cache = sandbox.cache();
    let wheelhouse = sandbox.wheelhouse();
    let run = install_on_full_disk(
        &sandbox,
        &venvs,
        "1m",
        &[
            "--packs-dir",
            packs.to_str().unwrap(),
            "--virtualenvs-dir",
            venvs.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--wheelhouse",
            wheelhouse.to_str().unwrap(),
            "--installer",
            "pip",
            pack.to_str().unwrap(),
        ],
    );
    run.assert_code(1)
        .assert_stderr_has("The disk holding the virtualenvs is full");
    assert!(!run.stderr.contains("python3-venv"), "{}", run.stderr);
}

#[test]
fn a_file_name_that_is_not_utf8_is_named_as_text() {
    let sandbox = Sandbox::new();
    let repo = pack_repo(sandbox.path(), "hello_st2", &["1.0.0"]);
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    fs::write(repo.join("actions").join(odd), "x").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "an odd name"]);
    let spec = format!("file://{}=main", repo.display());
    let run = sandbox.install(&["--no-base-requirements", &spec]);
    run.assert_ok()
        .assert_stderr_has("skipped actions/caf\u{fffd}.txt from git: its name is not UTF-8");
    assert!(!run.stderr.contains("[99, 97, 102"), "{}", run.stderr);
}
