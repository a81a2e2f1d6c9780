//! `st2-pack-install` end to end: real git repositories, a real HTTP index, git daemon, real
//! virtualenvs built offline from a wheelhouse.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::repos::{
    bare_clone, copy_fixture, fixture_pack, git, pack_repo, set_version, write_index,
};
use common::run::Sandbox;
use common::servers::ServedPacks;
use sha2::{Digest, Sha256};

fn mode(path: &std::path::Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

fn staging_is_clean(sandbox: &Sandbox) -> bool {
    [sandbox.packs(), sandbox.venvs()].iter().all(|dir| {
        fs::read_dir(dir.join(".st2pack-staging"))
            .map_or(true, |mut entries| entries.next().is_none())
    })
}

#[test]
fn local_directory_installs_with_its_virtualenv_and_provenance() {
    let sandbox = Sandbox::new();
    let src = sandbox.path().join("src");
    fs::create_dir(&src).unwrap();
    copy_fixture("with_reqs", &src.join("with_reqs"));
    fs::set_permissions(
        src.join("with_reqs/actions/shout.py"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();

    let run = sandbox.install(&["--json", src.join("with_reqs").to_str().unwrap()]);
    run.assert_ok();
    let pack = sandbox.packs().join("with_reqs");
    assert!(pack.join("pack.yaml").is_file());
    assert_eq!(mode(&pack), 0o755);
    assert_eq!(mode(&pack.join("actions/shout.py")), 0o644);
    assert_eq!(
        sandbox.venv_python(
            "with_reqs",
            "import fixture_lib; print(fixture_lib.shout('hi'))"
        ),
        "HI!"
    );
    assert_eq!(
        sandbox.venv_python("with_reqs", "import six; print(six.__version__)"),
        "1.16.0"
    );

    let provenance: serde_json::Value =
        serde_json::from_slice(&fs::read(pack.join(".st2pack.json")).unwrap()).unwrap();
    assert_eq!(provenance["name"], "with_reqs");
    assert_eq!(provenance["version"], "0.3.0");
    assert!(
        provenance["content_digest"]
            .as_str()
            .is_some_and(|d| d.len() == 64)
    );
    // The pin records the virtualenv's inputs, not only their digest: the requirements file read
    // (length, then bytes), the interpreter and the installer's settings.
    let virtualenv = &provenance["virtualenv"];
    let requirements = fs::read(pack.join("requirements.txt")).unwrap();
    let mut digest = Sha256::new();
    digest.update((requirements.len() as u64).to_le_bytes());
    digest.update(&requirements);
    assert_eq!(
        virtualenv["requirements_digest"],
        format!("sha256:{}", hex::encode(digest.finalize()))
    );
    assert!(
        virtualenv["interpreter"]
            .as_str()
            .is_some_and(|path| path.starts_with('/') && path.contains("python")),
        "{virtualenv}"
    );
    let installer = &virtualenv["installer"];
    assert!(installer["engine"] == "uv" || installer["engine"] == "pip");
    assert_eq!(installer["base_requirements"], true);
    assert_eq!(installer["offline_wheelhouse"], true);
    assert_eq!(installer["only_binary"], false);

    let summary = run.json();
    assert_eq!(summary["packs"][0]["status"], "installed");
    assert_eq!(summary["packs"][0]["name"], "with_reqs");
    assert!(staging_is_clean(&sandbox));
}

#[test]
fn a_file_url_to_a_plain_directory_is_copied_as_upstream_does() {
    let sandbox = Sandbox::new();
    copy_fixture("hello_st2", &sandbox.path().join("plain"));
    let url = format!("file://{}", sandbox.path().join("plain").display());
    sandbox
        .install(&["--no-base-requirements", &url])
        .assert_ok();
    assert!(sandbox.packs().join("hello_st2/actions/hello.sh").is_file());
}

#[test]
fn work_tree_without_ref_is_copied_with_uncommitted_edits_and_without_git() {
    let sandbox = Sandbox::new();
    let repo = pack_repo(sandbox.path(), "hello_st2", &["1.0.0"]);
    fs::write(repo.join("actions/uncommitted.txt"), "edit").unwrap();
    sandbox
        .install(&["--no-base-requirements", repo.to_str().unwrap()])
        .assert_ok();
    let pack = sandbox.packs().join("hello_st2");
    assert!(pack.join("actions/uncommitted.txt").is_file());
    assert!(!pack.join(".git").exists());
    assert_eq!(mode(&pack.join("actions/hello.sh")), 0o755);
}

#[test]
fn work_tree_with_ref_and_bare_repo_are_checked_out_at_the_ref() {
    let sandbox = Sandbox::new();
    let repo = pack_repo(sandbox.path(), "hello_st2", &["1.0.0", "1.1.0"]);
    fs::write(repo.join("actions/uncommitted.txt"), "edit").unwrap();
    let spec = format!("{}=1.0.0", repo.display());
    sandbox
        .install(&["--no-base-requirements", "--json", &spec])
        .assert_ok();
    let pack = sandbox.packs().join("hello_st2");
    assert!(
        fs::read_to_string(pack.join("pack.yaml"))
            .unwrap()
            .contains("version: 1.0.0")
    );
    assert!(!pack.join("actions/uncommitted.txt").exists());
    assert_eq!(
        mode(&pack.join("actions/hello.sh")),
        0o755,
        "executable bit comes from git"
    );

    // A bare repository with no ref installs its default branch.
    let bare = bare_clone(&repo, sandbox.path(), "hello_bare");
    let run = sandbox.install(&["--no-base-requirements", "--json", bare.to_str().unwrap()]);
    run.assert_ok();
    assert!(
        fs::read_to_string(pack.join("pack.yaml"))
            .unwrap()
            .contains("version: 1.1.0")
    );
    assert_eq!(
        run.json()["packs"][0]["commit"],
        git(&repo, &["rev-parse", "main"])
    );
}

#[test]
fn file_urls_resolve_tags_branches_and_commits() {
    let sandbox = Sandbox::new();
    let repo = pack_repo(sandbox.path(), "hello_st2", &["1.0.0", "1.1.0"]);
    git(&repo, &["checkout", "-q", "-b", "feature", "v1.0.0"]);
    set_version(&repo, "1.0.1");
    git(&repo, &["commit", "-q", "-am", "feature work"]);
    let feature_commit = git(&repo, &["rev-parse", "HEAD"]);
    git(&repo, &["checkout", "-q", "main"]);
    let url = format!("file://{}", repo.display());
    let installed_version = |sandbox: &Sandbox| {
        let text = fs::read_to_string(sandbox.packs().join("hello_st2/pack.yaml")).unwrap();
        text.lines()
            .find(|l| l.starts_with("version:"))
            .unwrap()
            .to_string()
    };
    for (reference, expected) in [
        ("1.0.0", "version: 1.0.0"),
        ("v1.1.0", "version: 1.1.0"),
        ("feature", "version: 1.0.1"),
        (&feature_commit[..10], "version: 1.0.1"),
    ] {
        sandbox
            .install(&["--no-base-requirements", &format!("{url}={reference}")])
            .assert_ok();
        assert_eq!(installed_version(&sandbox), expected, "ref {reference}");
    }
    sandbox
        .install(&["--no-base-requirements", &url])
        .assert_ok();
    assert_eq!(
        installed_version(&sandbox),
        "version: 1.1.0",
        "default branch"
    );
}

#[test]
fn exchange_names_resolve_through_an_http_index_and_git_daemon() {
    let sandbox = Sandbox::new();
    let served = ServedPacks::start(sandbox.path());
    let index_url = served.index_url.clone();

    // A name with no version installs the index version; its dependencies come along.
    let run = sandbox.install(&["--index-url", &index_url, "--json", "hello_deps"]);
    run.assert_ok();
    let summary = run.json();
    let names: Vec<&str> = summary["packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hello_deps", "hello_st2", "with_reqs"]);
    assert_eq!(summary["packs"][1]["ref"], "v1.1.0");
    assert_eq!(summary["packs"][1]["requested_by"][0], "hello_deps");
    assert!(sandbox.packs().join("hello_st2/pack.yaml").is_file());
    assert_eq!(
        sandbox.venv_python("with_reqs", "import fixture_lib; print('ok')"),
        "ok"
    );

    // A name with a version checks out tag v<version>.
    let run = sandbox.install(&["--index-url", &index_url, "--json", "hello_st2=1.0.0"]);
    run.assert_ok();
    assert_eq!(run.json()["packs"][0]["ref"], "v1.0.0");

    // Unchanged re-install is skipped; --force rebuilds.
    let run = sandbox.install(&["--index-url", &index_url, "--json", "hello_st2=1.0.0"]);
    run.assert_ok();
    assert_eq!(run.json()["packs"][0]["status"], "unchanged");
    let run = sandbox.install(&[
        "--index-url",
        &index_url,
        "--json",
        "--force",
        "hello_st2=1.0.0",
    ]);
    run.assert_ok();
    assert_eq!(run.json()["packs"][0]["status"], "installed");
}

#[test]
fn a_failed_requirement_keeps_the_previous_install_intact() {
    let sandbox = Sandbox::new();
    let repo = pack_repo(sandbox.path(), "with_reqs", &["0.3.0"]);
    let url = format!("file://{}", repo.display());
    sandbox.install(&[&url]).assert_ok();
    let pack = sandbox.packs().join("with_reqs");
    fs::write(pack.join("config.yaml"), "volume: 3\n").unwrap();
    let before = fs::read_to_string(pack.join(".st2pack.json")).unwrap();

    fs::write(
        repo.join("requirements.txt"),
        "st2pack-no-such-package==9.9.9\n",
    )
    .unwrap();
    set_version(&repo, "0.4.0");
    git(&repo, &["commit", "-q", "-am", "broken requirement"]);
    let run = sandbox.install(&[&url]);
    run.assert_code(1)
        .assert_stderr_has("st2pack-no-such-package");
    assert_eq!(
        fs::read_to_string(pack.join(".st2pack.json")).unwrap(),
        before
    );
    assert_eq!(
        fs::read_to_string(pack.join("config.yaml")).unwrap(),
        "volume: 3\n"
    );
    assert_eq!(
        sandbox.venv_python("with_reqs", "import fixture_lib; print('still works')"),
        "still works"
    );
    assert!(staging_is_clean(&sandbox));

    // The next good version keeps the user's config.yaml.
    git(
        &repo,
        &["checkout", "-q", "HEAD~1", "--", "requirements.txt"],
    );
    git(&repo, &["commit", "-q", "-am", "fixed"]);
    sandbox.install(&[&url]).assert_ok();
    assert!(
        fs::read_to_string(pack.join("pack.yaml"))
            .unwrap()
            .contains("version: 0.4.0")
    );
    assert_eq!(
        fs::read_to_string(pack.join("config.yaml")).unwrap(),
        "volume: 3\n"
    );
}

/// Bad input: each case gets a clear message naming what was typed, a non-zero exit code, and
/// leaves what was installed before untouched.
mod bad_input {
    use super::*;

    fn with_index(sandbox: &Sandbox, packs: &[(&str, &str, &str)]) -> String {
        let path = sandbox.path().join("index.json");
        write_index(&path, packs);
        format!("file://{}", path.display())
    }

    #[test]
    fn unknown_exchange_name_suggests_close_names() {
        let sandbox = Sandbox::new();
        let index = with_index(&sandbox, &[("hello_st2", "file:///nowhere", "1.0.0")]);
        sandbox
            .install(&["--index-url", &index, "helo_st2"])
            .assert_code(1)
            .assert_stderr_has("\"helo_st2\" is not in the StackStorm Exchange index")
            .assert_stderr_has("did you mean: hello_st2?");
    }

    #[test]
    fn unreachable_index_names_the_url() {
        let sandbox = Sandbox::new();
        let url = format!(
            "http://127.0.0.1:{}/index.json",
            common::servers::free_port()
        );
        let run = sandbox.install(&["--index-url", &url, "--index-timeout", "5", "hello_st2"]);
        run.assert_code(1).assert_stderr_has(&url);
    }

    #[test]
    fn missing_tag_lists_existing_versions_in_semver_order() {
        let sandbox = Sandbox::new();
        let repo = pack_repo(sandbox.path(), "hello_st2", &["1.0.0", "1.1.0"]);
        git(&repo, &["tag", "v1.10.0"]);
        git(&repo, &["tag", "v1.9.0"]);
        let run = sandbox.install(&[&format!("file://{}=2.0.0", repo.display())]);
        run.assert_code(1)
            .assert_stderr_has("no tag, branch or commit \"2.0.0\"")
            .assert_stderr_has("versions that exist: v1.0.0, v1.1.0, v1.9.0, v1.10.0")
            .assert_stderr_has("branches: main");
    }

    #[test]
    fn malformed_pack_yaml_names_file_and_line() {
        let sandbox = Sandbox::new();
        let dir = common::repos::fixture_pack("broken_yaml");
        sandbox
            .install(&[dir.to_str().unwrap()])
            .assert_code(1)
            .assert_stderr_has(&format!("{}/pack.yaml", dir.display()))
            .assert_stderr_has("line 4");
    }

    #[test]
    fn unsafe_or_invalid_pack_names_are_refused_even_with_force() {
        let sandbox = Sandbox::new();
        for bad_ref in ["../x", "a/b", "Upper", "_global"] {
            let dir = sandbox.path().join("src");
            let _ = fs::remove_dir_all(&dir);
            copy_fixture("hello_st2", &dir);
            let text = fs::read_to_string(dir.join("pack.yaml")).unwrap();
            fs::write(
                dir.join("pack.yaml"),
                text.replace("ref: hello_st2", &format!("ref: \"{bad_ref}\"")),
            )
            .unwrap();
            let run =
                sandbox.install(&["--force", "--no-base-requirements", dir.to_str().unwrap()]);
            run.assert_code(1)
                .assert_stderr_has(&format!("\"{bad_ref}\""));
            assert!(!sandbox.path().join("x").exists() && !sandbox.packs().join("a").exists());
            let installed: Vec<_> = fs::read_dir(sandbox.packs())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(
                installed
                    .iter()
                    .all(|n| n.to_string_lossy().starts_with('.')),
                "{bad_ref}: something was installed: {installed:?}"
            );
        }
        // As a spec on the command line, a bad name is bad usage.
        sandbox
            .install(&["Upper"])
            .assert_code(2)
            .assert_stderr_has("\"Upper\"");
        sandbox
            .install(&["_global"])
            .assert_code(2)
            .assert_stderr_has("_global");
    }

    #[test]
    fn missing_python_is_bad_usage() {
        let sandbox = Sandbox::new();
        let dir = common::repos::fixture_pack("hello_st2");
        sandbox
            .install(&["--python", "/nonexistent/python3.8", dir.to_str().unwrap()])
            .assert_code(2)
            .assert_stderr_has("/nonexistent/python3.8")
            .assert_stderr_has("--python");
    }

    #[test]
    fn dependency_conflict_names_both_requesters() {
        let sandbox = Sandbox::new();
        let repo = pack_repo(sandbox.path(), "hello_st2", &["1.0.0", "1.1.0"]);
        let url = format!("file://{}", repo.display());
        for (name, version) in [("one", "1.0.0"), ("two", "1.1.0")] {
            let dir = sandbox.path().join(name);
            copy_fixture("hello_deps", &dir);
            let text = fs::read_to_string(dir.join("pack.yaml")).unwrap();
            let text = text
                .replace("ref: hello_deps", &format!("ref: {name}"))
                .replace(
                    "  - hello_st2\n  - with_reqs\n",
                    &format!("  - {url}={version}\n"),
                );
            fs::write(dir.join("pack.yaml"), text).unwrap();
        }
        let run = sandbox.install(&[
            "--no-base-requirements",
            sandbox.path().join("one").to_str().unwrap(),
            sandbox.path().join("two").to_str().unwrap(),
        ]);
        run.assert_code(1)
            .assert_stderr_has("pack hello_st2 is wanted at two different versions")
            .assert_stderr_has("requested by one")
            .assert_stderr_has("requested by two");
        assert!(!sandbox.packs().join("hello_st2").exists());
        assert!(!sandbox.packs().join("one").exists());
    }

    #[test]
    fn dependency_cycle_is_reported() {
        let sandbox = Sandbox::new();
        let index = with_index(
            &sandbox,
            &[
                (
                    "cycle_a",
                    &format!(
                        "file://{}",
                        pack_repo(sandbox.path(), "cycle_a", &["1.0.0"]).display()
                    ),
                    "1.0.0",
                ),
                (
                    "cycle_b",
                    &format!(
                        "file://{}",
                        pack_repo(sandbox.path(), "cycle_b", &["1.0.0"]).display()
                    ),
                    "1.0.0",
                ),
            ],
        );
        sandbox
            .install(&["--index-url", &index, "cycle_a"])
            .assert_code(1)
            .assert_stderr_has("dependency cycle: cycle_a -> cycle_b -> cycle_a");
        assert!(!sandbox.packs().join("cycle_a").exists());
    }

    #[test]
    fn a_password_in_a_git_url_is_never_echoed() {
        let sandbox = Sandbox::new();
        let port = common::servers::free_port();
        let run = sandbox.install(&[
            "--json",
            &format!("https://deploy:Sup3rS3cret@127.0.0.1:{port}/team/pack.git=v1.0.0"),
        ]);
        run.assert_code(1).assert_stderr_has("//***@127.0.0.1");
        assert!(!run.stderr.contains("Sup3rS3cret") && !run.stdout.contains("Sup3rS3cret"));
        let leaked = walkdir::WalkDir::new(sandbox.path())
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .any(|e| {
                fs::read(e.path())
                    .is_ok_and(|b| String::from_utf8_lossy(&b).contains("Sup3rS3cret"))
            });
        assert!(!leaked, "the password was written to a file");
    }

    #[test]
    fn a_directory_without_pack_yaml_is_refused() {
        let sandbox = Sandbox::new();
        let dir = common::repos::fixture_pack("no_pack_yaml");
        sandbox
            .install(&[dir.to_str().unwrap()])
            .assert_code(1)
            .assert_stderr_has(&format!("{} has no pack.yaml", dir.display()));
    }

    #[test]
    fn python2_only_pack_fails_unless_forced() {
        let sandbox = Sandbox::new();
        let dir = common::repos::fixture_pack("py2_only");
        sandbox
            .install(&["--no-base-requirements", dir.to_str().unwrap()])
            .assert_code(1)
            .assert_stderr_has("Python 2");
        sandbox
            .install(&["--no-base-requirements", "--force", dir.to_str().unwrap()])
            .assert_ok()
            .assert_stderr_has("warning: py2_only");
    }
}

/// A run killed while building a virtualenv leaves the previous install exactly as it was, and
/// the next run clears its leftovers.
#[test]
fn a_killed_install_leaves_the_previous_install_and_no_debris_for_the_next_run() {
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    let sandbox = Sandbox::new();
    let repo = pack_repo(sandbox.path(), "with_reqs", &["0.3.0"]);
    let url = format!("file://{}", repo.display());
    sandbox.install(&[&url]).assert_ok();
    let pack = sandbox.packs().join("with_reqs");
    let before = fs::read_to_string(pack.join(".st2pack.json")).unwrap();
    set_version(&repo, "0.4.0");
    git(&repo, &["commit", "-q", "-am", "new version"]);

    // A package index that accepts connections and never answers keeps the installer busy.
    let silent_index = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let index_url = format!(
        "http://127.0.0.1:{}/simple",
        silent_index.local_addr().unwrap().port()
    );
    let mut child = sandbox
        .install_command(&[
            ("UV_DEFAULT_INDEX", &index_url),
            ("PIP_INDEX_URL", &index_url),
        ])
        .arg(&url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let venv_staging = sandbox.venvs().join(".st2pack-staging");
    let deadline = Instant::now() + Duration::from_secs(60);
    let building = loop {
        let started = fs::read_dir(&venv_staging)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .any(|e| e.path().join("venv").exists())
            })
            .unwrap_or(false);
        if started || Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break started;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
    assert!(building, "the install never reached the virtualenv build");

    assert_eq!(
        fs::read_to_string(pack.join(".st2pack.json")).unwrap(),
        before
    );
    assert_eq!(
        sandbox.venv_python("with_reqs", "import fixture_lib; print('intact')"),
        "intact"
    );
    assert!(
        !staging_is_clean(&sandbox),
        "the kill should have left staging behind"
    );

    sandbox.install(&[&url]).assert_ok();
    assert!(staging_is_clean(&sandbox));
    assert!(
        fs::read_to_string(pack.join("pack.yaml"))
            .unwrap()
            .contains("version: 0.4.0")
    );
}

/// The next run after a commit interrupted once its journal was written puts the previous install
/// back and says so once, in the end summary.
#[test]
fn a_rolled_back_install_is_reported_once() {
    use std::os::unix::fs::MetadataExt;

    let sandbox = Sandbox::new();
    let pack = fixture_pack("hello_st2");
    sandbox
        .install(&["--no-base-requirements", pack.to_str().unwrap()])
        .assert_ok();
    // What a commit stopped right after its journal leaves: the new trees staged, nothing moved.
    let pack_txn = sandbox.packs().join(".st2pack-staging/1-interrupted");
    let venv_txn = sandbox.venvs().join(".st2pack-staging/1-interrupted");
    fs::create_dir_all(pack_txn.join("pack")).unwrap();
    fs::create_dir_all(venv_txn.join("venv")).unwrap();
    let inode = |path: std::path::PathBuf| fs::metadata(path).unwrap().ino();
    fs::write(
        pack_txn.join("journal"),
        format!(
            "hello_st2\n{}\n{}\n",
            inode(pack_txn.join("pack")),
            inode(venv_txn.join("venv"))
        ),
    )
    .unwrap();

    let run = sandbox.install(&["--no-base-requirements", pack.to_str().unwrap()]);
    run.assert_ok();
    assert_eq!(
        run.stderr
            .matches("rolled back an interrupted install of pack hello_st2")
            .count(),
        1,
        "the note should appear exactly once\n--- stderr\n{}",
        run.stderr
    );
    assert!(staging_is_clean(&sandbox));
}

#[test]
fn skip_dependencies_and_keep_git() {
    let sandbox = Sandbox::new();
    let index = sandbox.path().join("index.json");
    let hello = pack_repo(sandbox.path(), "hello_st2", &["1.1.0"]);
    write_index(
        &index,
        &[("hello_st2", &format!("file://{}", hello.display()), "1.1.0")],
    );
    let deps = pack_repo(sandbox.path(), "hello_deps", &["0.2.0"]);
    let index_url = format!("file://{}", index.display());
    let run = sandbox.install(&[
        "--index-url",
        &index_url,
        "--skip-dependencies",
        "--keep-git",
        "--json",
        &format!("file://{}", deps.display()),
    ]);
    run.assert_ok();
    assert_eq!(run.json()["packs"].as_array().unwrap().len(), 1);
    assert!(!sandbox.packs().join("hello_st2").exists());
    let installed = sandbox.packs().join("hello_deps");
    assert_eq!(
        git(&installed, &["rev-parse", "HEAD"]),
        git(&deps, &["rev-parse", "HEAD"])
    );
    assert_eq!(
        git(&installed, &["remote", "get-url", "origin"]),
        format!("file://{}", deps.display())
    );
}

/// Everything an install leaves is readable by a non-root st2 user and writable by nobody else,
/// with the modes the README lists: `.pyc` files 0644 (in the pack and in the virtualenv, fresh
/// or from the bytecode cache), even under a restrictive umask.
#[test]
fn installed_files_have_the_documented_modes() {
    let sandbox = Sandbox::new();
    let src = sandbox.path().join("src");
    fs::create_dir(&src).unwrap();
    copy_fixture("with_reqs", &src.join("with_reqs"));
    let wheelhouse = sandbox.wheelhouse();
    for round in ["fresh", "from the cache"] {
        let _ = fs::remove_dir_all(sandbox.packs().join("with_reqs"));
        let _ = fs::remove_dir_all(sandbox.venvs().join("with_reqs"));
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg("umask 077 && exec \"$@\"")
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_st2-pack-install"))
            .arg("--wheelhouse")
            .arg(&wheelhouse)
            .arg("--packs-dir")
            .arg(sandbox.packs())
            .arg("--virtualenvs-dir")
            .arg(sandbox.venvs())
            .arg("--cache-dir")
            .arg(sandbox.cache())
            .arg(src.join("with_reqs"))
            .env("HOME", sandbox.path())
            .status()
            .unwrap();
        assert!(status.success(), "{round}");
        let mut wrong = Vec::new();
        let mut pyc = 0;
        for dir in [
            sandbox.packs().join("with_reqs"),
            sandbox.venvs().join("with_reqs"),
        ] {
            for entry in walkdir::WalkDir::new(&dir) {
                let entry = entry.unwrap();
                if entry.file_type().is_symlink() {
                    continue;
                }
                let mode = mode(entry.path());
                let expected: &[u32] = if entry.file_type().is_dir() {
                    &[0o755]
                } else if entry.path().extension().is_some_and(|e| e == "pyc") {
                    pyc += 1;
                    &[0o644]
                } else {
                    &[0o644, 0o755]
                };
                if !expected.contains(&mode) {
                    wrong.push(format!("{:o} {}", mode, entry.path().display()));
                }
            }
        }
        assert!(pyc > 0, "{round}: no bytecode was compiled");
        assert!(
            wrong.is_empty(),
            "{round}: unexpected modes:\n{}",
            wrong.join("\n")
        );
    }
}

/// Installed virtualenvs share their files with the cache: a file edited in place there must not
/// reach the next install, neither through the virtualenv cache nor through the bytecode cache.
#[test]
fn a_file_edited_in_an_installed_tree_never_reaches_the_next_install() {
    use std::io::Write;
    let sandbox = Sandbox::new();
    let src = sandbox.path().join("src");
    fs::create_dir(&src).unwrap();
    copy_fixture("with_reqs", &src.join("with_reqs"));
    let pack_arg = src.join("with_reqs");
    // Installed twice: the second install takes everything it can from the caches.
    sandbox.install(&[pack_arg.to_str().unwrap()]).assert_ok();
    fs::remove_dir_all(sandbox.packs().join("with_reqs")).unwrap();
    sandbox
        .install(&["--force", pack_arg.to_str().unwrap()])
        .assert_ok();
    let append = |path: &std::path::Path, text: &[u8]| {
        fs::OpenOptions::new()
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text)
            .unwrap();
    };
    let lib = sandbox
        .venv_python(
            "with_reqs",
            "import fixture_lib; print(fixture_lib.__file__)",
        )
        .to_string();
    append(
        std::path::Path::new(&lib),
        b"\ndef shout(text):\n    return 'POISONED'\n",
    );
    let pycache = sandbox.packs().join("with_reqs/actions/__pycache__");
    let pyc = fs::read_dir(&pycache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let compiled = fs::read(&pyc).unwrap();
    append(&pyc, b"POISONED");

    // A fresh install of the same pack: the virtualenv cache entry and the cached bytecode are
    // what it would reuse.
    fs::remove_dir_all(sandbox.packs().join("with_reqs")).unwrap();
    fs::remove_dir_all(sandbox.venvs().join("with_reqs")).unwrap();
    let run = sandbox.install(&["--json", pack_arg.to_str().unwrap()]);
    run.assert_ok()
        .assert_stderr_has("changed since it was stored");
    assert_eq!(
        run.json()["packs"][0]["virtualenv_from_cache"],
        serde_json::Value::Null
    );
    assert_eq!(
        sandbox.venv_python(
            "with_reqs",
            "import fixture_lib; print(fixture_lib.shout('hi'))"
        ),
        "HI!"
    );
    assert!(
        fs::read(&pyc).unwrap() == compiled,
        "the .pyc edited in place came back from the bytecode cache"
    );

    // The rebuilt entry is sound again: the next install uses it.
    fs::remove_dir_all(sandbox.packs().join("with_reqs")).unwrap();
    fs::remove_dir_all(sandbox.venvs().join("with_reqs")).unwrap();
    let run = sandbox.install(&["--json", pack_arg.to_str().unwrap()]);
    run.assert_ok();
    assert_eq!(run.json()["packs"][0]["virtualenv_from_cache"], true);
}
