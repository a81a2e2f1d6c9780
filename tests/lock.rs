//! Lock files end to end: `st2pack lock` over real git repositories (served by `git daemon`, found
//! through a real index) and the offline test wheelhouse, then `st2pack build --locked` and
//! `st2-pack-install --locked` on empty caches, with this machine's interpreter (`--runtime host`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::registry::TestRegistry;
use common::repos::{copy_fixture, git, pack_repo};
use common::run::{Run, Sandbox};
use common::servers::{PackageIndex, ServedPacks};
use common::wheel::build_wheel;
use st2pack::lockfile::LockFile;

const PYTHON: &str = "/usr/bin/python3";

/// A binary with the sandbox's wheelhouse and the runtime of this machine's interpreter (unless
/// `args` name a runtime image); `home` holds its caches (st2pack's and uv's), so that a fresh `home` is a machine with empty caches.
fn run(sandbox: &Sandbox, program: &str, home: &Path, args: &[&str]) -> Run {
    let wheelhouse = sandbox.wheelhouse();
    let xdg = home.join("xdg-cache");
    let mut command = sandbox.command(program, &[("XDG_CACHE_HOME", xdg.to_str().unwrap())]);
    command
        .args(args)
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .arg("--wheelhouse")
        .arg(wheelhouse);
    if !args.contains(&"--runtime-image") {
        command.args(["--runtime", "host", "--python", PYTHON]);
    }
    Run::from(command.output().unwrap())
}

fn st2pack(sandbox: &Sandbox, home: &Path, args: &[&str]) -> Run {
    run(sandbox, env!("CARGO_BIN_EXE_st2pack"), home, args)
}

fn pack_install(sandbox: &Sandbox, home: &Path, args: &[&str]) -> Run {
    let (packs, venvs) = (sandbox.packs(), sandbox.venvs());
    let mut all = vec![
        "--packs-dir",
        path(&packs),
        "--virtualenvs-dir",
        path(&venvs),
    ];
    all.extend_from_slice(args);
    run(sandbox, env!("CARGO_BIN_EXE_st2-pack-install"), home, &all)
}

/// `MAJOR.MINOR` of [`PYTHON`].
fn python_version() -> String {
    let output = std::process::Command::new(PYTHON)
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A new, empty machine: its own cache directories.
fn fresh_home(sandbox: &Sandbox, name: &str) -> PathBuf {
    let home = sandbox.path().join("homes").join(name);
    fs::create_dir_all(&home).unwrap();
    home
}

/// Builds the lock into an OCI layout with an empty cache, and returns the digest.
fn locked_build(sandbox: &Sandbox, lock: &Path, index_url: &str, machine: &str) -> String {
    let home = fresh_home(sandbox, machine);
    let layout = home.join("image");
    let run = st2pack(
        sandbox,
        &home,
        &[
            "build",
            "--locked",
            path(lock),
            "--index-url",
            index_url,
            "--base",
            "scratch",
            "--tag",
            "st2packs:1",
            "--output",
            &format!("oci:{}", layout.display()),
        ],
    );
    run.assert_ok();
    let digest = run.stdout.trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    digest
}

#[test]
fn a_lock_builds_the_same_image_on_empty_caches_even_after_a_tag_moves() {
    let sandbox = Sandbox::new();
    let served = ServedPacks::start(sandbox.path());
    let lock = sandbox.path().join("st2packs.lock");
    let home = fresh_home(&sandbox, "locker");
    st2pack(
        &sandbox,
        &home,
        &[
            "lock",
            "hello_deps",
            "--index-url",
            &served.index_url,
            "-o",
            path(&lock),
        ],
    )
    .assert_ok();

    // Three packs at their commits, every requirement at one version with its hashes.
    let locked = LockFile::read(&lock).unwrap();
    assert_eq!(locked.format, 1);
    assert_eq!(locked.requested, ["hello_deps"]);
    assert_eq!(locked.runtime.kind, "native");
    assert_eq!(locked.runtime.interpreter, PYTHON);
    let names: Vec<&str> = locked.packs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["hello_deps", "hello_st2", "with_reqs"]);
    let hello_deps = locked.pack("hello_deps").unwrap();
    assert_eq!(hello_deps.dependencies, ["hello_st2", "with_reqs"]);
    let hello_st2 = locked.pack("hello_st2").unwrap();
    assert_eq!(hello_st2.reference.as_deref(), Some("v1.1.0"));
    let locked_commit = hello_st2.commit.clone().unwrap();
    assert_eq!(
        locked_commit,
        git(&served.work.join("hello_st2"), &["rev-parse", "v1.1.0"])
    );
    let with_reqs = locked.pack("with_reqs").unwrap();
    let requirement = |name: &str| {
        with_reqs
            .requirements
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("{name} is not locked: {:?}", with_reqs.requirements))
    };
    let lib = requirement("st2pack-fixture-lib");
    assert_eq!(lib.version.as_deref(), Some("1.2.0"));
    assert!(lib.hashes[0].starts_with("sha256:"), "{:?}", lib.hashes);
    // The base requirement and the seed the virtualenv gets are locked too.
    assert_eq!(requirement("six").version.as_deref(), Some("1.16.0"));
    requirement("setuptools");
    // Locking again, elsewhere, gives the same bytes.
    let again = sandbox.path().join("again.lock");
    let home = fresh_home(&sandbox, "locker-two");
    st2pack(
        &sandbox,
        &home,
        &[
            "lock",
            "hello_deps",
            "--index-url",
            &served.index_url,
            "-o",
            path(&again),
        ],
    )
    .assert_ok();
    assert_eq!(fs::read(&again).unwrap(), fs::read(&lock).unwrap());

    // Two machines, empty caches: one image.
    let first = locked_build(&sandbox, &lock, &served.index_url, "one");
    let second = locked_build(&sandbox, &lock, &served.index_url, "two");
    assert_eq!(first, second);

    // Moving the tag to another commit changes nothing for the lock...
    let hello = served.work.join("hello_st2");
    fs::write(hello.join("README.md"), "moved\n").unwrap();
    git(&hello, &["add", "-A"]);
    git(&hello, &["commit", "-q", "-m", "after the release"]);
    git(&hello, &["tag", "-f", "v1.1.0"]);
    let bare = served.served.join("hello_st2.git");
    git(
        &hello,
        &[
            "push",
            "-q",
            "--force",
            bare.to_str().unwrap(),
            "main",
            "refs/tags/v1.1.0",
        ],
    );
    let after_move = locked_build(&sandbox, &lock, &served.index_url, "three");
    assert_eq!(after_move, first, "the locked build took the moved tag");

    // ... and a subset of the lock installs at the locked commit too.
    let home = fresh_home(&sandbox, "installer");
    pack_install(
        &sandbox,
        &home,
        &[
            "--locked",
            path(&lock),
            "--index-url",
            &served.index_url,
            "hello_st2",
        ],
    )
    .assert_ok();
    let pin: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(sandbox.packs().join("hello_st2/.st2pack.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(pin["commit"], locked_commit.as_str());
    assert_eq!(pin["ref"], "v1.1.0");
    assert!(!sandbox.packs().join("with_reqs").exists());

    // The lock no longer matches the sources: --check says so, naming the pack.
    st2pack(
        &sandbox,
        &home,
        &[
            "lock",
            "--check",
            "-o",
            path(&lock),
            "--index-url",
            &served.index_url,
        ],
    )
    .assert_code(1)
    .assert_stderr_has("pack hello_st2: commit was");
}

#[test]
fn a_requirement_file_replaced_under_its_name_fails_the_locked_build_and_nothing_is_pushed() {
    let sandbox = Sandbox::new();
    let registry = TestRegistry::start_plain();
    let repo = pack_repo(sandbox.path(), "with_reqs", &["0.3.0"]);
    let spec = format!("file://{}=v0.3.0", repo.display());
    let lock = sandbox.path().join("st2packs.lock");
    let home = fresh_home(&sandbox, "locker");
    st2pack(&sandbox, &home, &["lock", &spec, "-o", path(&lock)]).assert_ok();

    // Same name, same version, other bytes.
    build_wheel(
        &sandbox.wheelhouse(),
        "st2pack-fixture-lib",
        "1.2.0",
        &[(
            "fixture_lib/__init__.py",
            "import os\ndef shout(text):\n    return text.upper() + '!'\n",
        )],
        &[],
        &[],
    );

    let tag = format!("{}/st2/locked:1", registry.host());
    let home = fresh_home(&sandbox, "builder");
    let run = st2pack(
        &sandbox,
        &home,
        &[
            "build",
            "--locked",
            path(&lock),
            "--base",
            "scratch",
            "--tag",
            &tag,
            "--push",
        ],
    );
    run.assert_code(1)
        .assert_stderr_has("st2pack-fixture-lib")
        .assert_stderr_has("Hash mismatch")
        .assert_stderr_has("lock file allows");
    assert_eq!(registry.upload_count(), 0, "{}", registry.access_log());
    assert_eq!(registry.count_requests("PUT", "/manifests/", "201"), 0);

    let home = fresh_home(&sandbox, "installer");
    pack_install(&sandbox, &home, &["--locked", path(&lock)])
        .assert_code(1)
        .assert_stderr_has("st2pack-fixture-lib");
    assert!(!sandbox.packs().join("with_reqs").exists());
    assert!(!sandbox.venvs().join("with_reqs").exists());
}

#[test]
fn a_lock_for_a_runtime_image_records_its_digest_and_builds_only_for_it() {
    let sandbox = Sandbox::new();
    let runtime = common::runtime_image::oci_reference(common::runtime_image::ST2);
    let dir = sandbox.path().join("with_reqs");
    copy_fixture("with_reqs", &dir);
    let lock = sandbox.path().join("st2packs.lock");
    let home = fresh_home(&sandbox, "locker");
    let image_args = ["--runtime-image", runtime.as_str()];
    let mut args = vec!["lock", path(&dir), "-o", path(&lock)];
    args.extend(image_args);
    st2pack(&sandbox, &home, &args).assert_ok();
    let locked = LockFile::read(&lock).unwrap();
    assert_eq!(locked.runtime.kind, "image");
    assert_eq!(locked.runtime.python, "3.9");
    assert!(
        locked.runtime.image_digest.is_some(),
        "{:?}",
        locked.runtime
    );

    let mut digests = Vec::new();
    for machine in ["one", "two"] {
        let home = fresh_home(&sandbox, machine);
        let layout = home.join("image");
        let output = format!("oci:{}", layout.display());
        let mut args = vec!["build", "--locked", path(&lock), "--base", "scratch"];
        args.extend(["--tag", "st2packs:1", "--output", &output]);
        args.extend(image_args);
        let run = st2pack(&sandbox, &home, &args);
        run.assert_ok();
        digests.push(run.stdout.trim().to_string());
    }
    assert_eq!(digests[0], digests[1]);

    // This machine's interpreter is another runtime.
    let home = fresh_home(&sandbox, "host");
    pack_install(&sandbox, &home, &["--locked", path(&lock)])
        .assert_code(2)
        .assert_stderr_has("was locked for CPython 3.9 at /usr/bin/python3.9")
        .assert_stderr_has("this run builds for CPython");
}

#[test]
fn a_locked_build_takes_the_layers_of_the_previous_locked_image() {
    let sandbox = Sandbox::new();
    let repo = pack_repo(sandbox.path(), "hello_st2", &["1.0.0", "1.1.0"]);
    let dir = sandbox.path().join("with_reqs");
    copy_fixture("with_reqs", &dir);
    let lock = sandbox.path().join("st2packs.lock");
    let home = fresh_home(&sandbox, "locker");
    let tagged = format!("file://{}=v1.1.0", repo.display());
    st2pack(
        &sandbox,
        &home,
        &["lock", &tagged, path(&dir), "-o", path(&lock)],
    )
    .assert_ok();

    let build = |machine: &str, extra: &[&str]| {
        let home = fresh_home(&sandbox, machine);
        let output = format!("oci:{}:1", home.join("image").display());
        let mut args = vec![
            "build",
            "--locked",
            path(&lock),
            "--base",
            "scratch",
            "--json",
        ];
        args.extend(["--tag", "st2packs:1", "--output", &output]);
        args.extend_from_slice(extra);
        let run = st2pack(&sandbox, &home, &args);
        run.assert_ok();
        (run.json(), output)
    };
    let (first, previous) = build("one", &[]);
    let (second, _) = build("two", &["--cache-from", &previous]);
    let sources: Vec<(&str, &str)> = second["packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap();
            (name, p["layer_source"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        sources,
        [("hello_st2", "cache-from"), ("with_reqs", "cache-from")]
    );
    assert_eq!(first["digest"], second["digest"]);
}

#[test]
fn lock_check_passes_until_the_requirements_change() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("with_reqs");
    copy_fixture("with_reqs", &dir);
    let lock = sandbox.path().join("st2packs.lock");
    let home = fresh_home(&sandbox, "ci");
    st2pack(&sandbox, &home, &["lock", path(&dir), "-o", path(&lock)]).assert_ok();
    let locked = LockFile::read(&lock).unwrap();
    assert!(locked.packs[0].content_digest.is_some());
    st2pack(&sandbox, &home, &["lock", "--check", "-o", path(&lock)])
        .assert_ok()
        .assert_stderr_has("up to date");

    fs::write(
        dir.join("requirements.txt"),
        "st2pack-fixture-lib==1.2.0\nsix\n",
    )
    .unwrap();
    st2pack(&sandbox, &home, &["lock", "--check", "-o", path(&lock)])
        .assert_code(1)
        .assert_stderr_has("pack with_reqs: requirements.txt was");
    // The file is left as it was.
    assert_eq!(LockFile::read(&lock).unwrap(), locked);
    // A directory that changed since it was locked is not installed from the lock.
    pack_install(&sandbox, &home, &["--locked", path(&lock)])
        .assert_code(1)
        .assert_stderr_has("changed since it was locked");
}

mod bad_input {
    use super::*;

    fn write(sandbox: &Sandbox, text: &str) -> PathBuf {
        let file = sandbox.path().join("st2packs.lock");
        fs::write(&file, text).unwrap();
        file
    }

    /// A valid lock of one local pack, for the runtime `runtime` (a TOML table body).
    fn lock_for(sandbox: &Sandbox, runtime: &str) -> PathBuf {
        let dir = sandbox.path().join("hello_st2");
        copy_fixture("hello_st2", &dir);
        write(
            sandbox,
            &format!(
                "format = 1\nrequested = [\"{dir}\"]\n\n[runtime]\n{runtime}\n\n[settings]\n\
                 base_requirements = true\nkeep_pip = false\nonly_binary = false\n\n[[pack]]\n\
                 name = \"hello_st2\"\nversion = \"1.1.0\"\nsource = \"{dir}\"\n\
                 content_digest = \"sha256:00\"\nspecs = [\"{dir}\"]\n",
                dir = dir.display()
            ),
        )
    }

    #[test]
    fn a_lock_file_of_a_newer_format_names_file_and_formats() {
        let sandbox = Sandbox::new();
        let home = fresh_home(&sandbox, "a");
        let file = write(&sandbox, "format = 9\n[whatever]\nnew = true\n");
        for run in [
            st2pack(
                &sandbox,
                &home,
                &[
                    "build",
                    "--locked",
                    path(&file),
                    "--tag",
                    "x:1",
                    "--output",
                    &format!("oci:{}", sandbox.path().join("out").display()),
                ],
            ),
            pack_install(&sandbox, &home, &["--locked", path(&file)]),
            st2pack(&sandbox, &home, &["lock", "--check", "-o", path(&file)]),
        ] {
            run.assert_code(2)
                .assert_stderr_has(&format!("{} is a lock file of format 9", file.display()))
                .assert_stderr_has("reads format 1");
        }
    }

    #[test]
    fn a_corrupt_lock_file_names_file_and_line() {
        let sandbox = Sandbox::new();
        let home = fresh_home(&sandbox, "a");
        let file = write(
            &sandbox,
            "format = 1\nrequested = [\"x\"]\n\n[runtime]\nkind = \"native\"\npython = 3\n",
        );
        st2pack(
            &sandbox,
            &home,
            &[
                "build",
                "--locked",
                path(&file),
                "--tag",
                "x:1",
                "--output",
                &format!("oci:{}", sandbox.path().join("out").display()),
            ],
        )
        .assert_code(2)
        .assert_stderr_has(&format!("{}:6:", file.display()));
        let file = write(&sandbox, "format = 1\nrequested = [\"x\"\n");
        pack_install(&sandbox, &home, &["--locked", path(&file)])
            .assert_code(2)
            .assert_stderr_has(&format!("{}:2:", file.display()));
    }

    #[test]
    fn a_lock_for_another_runtime_is_refused_naming_both() {
        let sandbox = Sandbox::new();
        let home = fresh_home(&sandbox, "a");
        let file = lock_for(
            &sandbox,
            "kind = \"preset\"\nname = \"st2-3.9\"\npython = \"3.10\"\n\
             interpreter = \"/usr/bin/python3.10\"\nplatform = \"x86_64-manylinux_2_35\"",
        );
        pack_install(&sandbox, &home, &["--locked", path(&file)])
            .assert_code(2)
            .assert_stderr_has("was locked for CPython 3.10 at /usr/bin/python3.10")
            .assert_stderr_has(&format!(
                "this run builds for CPython {} at {PYTHON}",
                python_version()
            ));
        assert!(!sandbox.packs().join("hello_st2").exists());
    }

    #[test]
    fn a_locked_commit_the_source_does_not_have_names_pack_source_and_commit() {
        let sandbox = Sandbox::new();
        let home = fresh_home(&sandbox, "a");
        let repo = pack_repo(sandbox.path(), "hello_st2", &["1.1.0"]);
        let missing = "0123456789abcdef0123456789abcdef01234567";
        let file = write(
            &sandbox,
            &format!(
                "format = 1\nrequested = [\"{repo}\"]\n\n[runtime]\nkind = \"native\"\n\
                 python = \"{version}\"\ninterpreter = \"{PYTHON}\"\n\n[settings]\n\
                 base_requirements = true\nkeep_pip = false\nonly_binary = false\n\n[[pack]]\n\
                 name = \"hello_st2\"\nversion = \"1.1.0\"\nsource = \"{repo}\"\n\
                 ref = \"v1.1.0\"\ncommit = \"{missing}\"\nspecs = [\"{repo}\"]\n",
                repo = repo.display(),
                version = python_version(),
            ),
        );
        pack_install(&sandbox, &home, &["--locked", path(&file)])
            .assert_code(1)
            .assert_stderr_has(&format!(
                "hello_st2 (locked: {} at {missing})",
                repo.display()
            ))
            .assert_stderr_has(&format!("no tag, branch or commit \"{missing}\""));
        assert!(!sandbox.packs().join("hello_st2").exists());
    }

    #[test]
    fn a_pack_not_in_the_lock_is_refused() {
        let sandbox = Sandbox::new();
        let home = fresh_home(&sandbox, "a");
        let version = python_version();
        let file = lock_for(
            &sandbox,
            &format!("kind = \"native\"\npython = \"{version}\"\ninterpreter = \"{PYTHON}\""),
        );
        pack_install(&sandbox, &home, &["--locked", path(&file), "other_pack"])
            .assert_code(2)
            .assert_stderr_has("other_pack is not in the lock file")
            .assert_stderr_has("it locks: hello_st2");
    }
}

/// `lock` and `install` reach a runtime image's registry with the registry flags, as `build`
/// does: its CA (`--ca-file`) and the login given (`--username` + `--password-stdin`). The
/// image here does not exist, so getting as far as "not found" shows both were used.
#[test]
fn lock_and_install_reach_a_runtime_images_registry_with_the_registry_flags() {
    use std::io::Write;
    let sandbox = Sandbox::new();
    let registry = TestRegistry::start_tls_htpasswd("ci", "right-pass-3");
    let image = format!("{}/st2/runtime:missing", registry.host());
    let home = sandbox.path().join("home");
    let repo = pack_repo(sandbox.path(), "hello_st2", &["1.1.0"]);
    let spec = format!("file://{}", repo.display());
    let attempt = |program: &str, subcommand: Option<&str>, login: &[&str], password: &str| {
        let mut command = sandbox.command(program, &[]);
        command
            .args(subcommand)
            .args([&spec, "--runtime-image", &image, "--cache-dir"])
            .arg(home.join("cache"))
            .args(login)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if subcommand == Some("install") || program.ends_with("st2-pack-install") {
            command
                .arg("--packs-dir")
                .arg(sandbox.packs())
                .arg("--virtualenvs-dir")
                .arg(sandbox.venvs());
        }
        let mut child = command.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        Run::from(child.wait_with_output().unwrap())
    };
    let ca = registry.ca_file().to_str().unwrap().to_string();
    let login = ["--ca-file", &ca, "--username", "ci", "--password-stdin"];
    let st2pack = env!("CARGO_BIN_EXE_st2pack");
    for (program, subcommand) in [
        (st2pack, Some("lock")),
        (st2pack, Some("install")),
        (env!("CARGO_BIN_EXE_st2-pack-install"), None),
    ] {
        let shown = format!("{program} {subcommand:?}");
        // Without its CA, the registry's certificate is not trusted.
        let untrusted = attempt(program, subcommand, &[], "");
        assert_ne!(untrusted.code, 0, "{shown}");
        untrusted.assert_stderr_has(&format!("--runtime-image {image}"));
        assert!(
            untrusted.stderr.contains("certificate"),
            "{shown}: {}",
            untrusted.stderr
        );
        // With it and the login, the registry answers that the image is not there.
        let answered = attempt(program, subcommand, &login, "right-pass-3\n");
        assert_ne!(answered.code, 0, "{shown}");
        answered.assert_stderr_has(&format!("--runtime-image {image}"));
        assert!(
            answered.stderr.contains("not found"),
            "{shown}: {}",
            answered.stderr
        );
        assert!(!answered.stderr.contains("right-pass-3"), "{shown}");
        // A wrong password is refused as such.
        let refused = attempt(program, subcommand, &login, "wrong\n");
        assert!(
            refused.stderr.contains("authentication"),
            "{shown}: {}",
            refused.stderr
        );
    }
}

/// A pack allowed to choose its index (`--allow-pack-index-options`) gets its locked
/// requirements from that index again: the lock file has exact versions and hashes, the pack's
/// requirements file (at the locked commit) says where they come from. No wheelhouse here, so
/// anything not found on the pack's index would come from PyPI, which has none of these files.
#[test]
fn a_locked_install_finds_the_packs_own_index_again() {
    let sandbox = Sandbox::new();
    let wheelhouse = sandbox.wheelhouse();
    let index = PackageIndex::serve_for_installs(&wheelhouse);
    let pack = sandbox.path().join("with_reqs");
    copy_fixture("with_reqs", &pack);
    fs::write(
        pack.join("requirements.txt"),
        format!("--index-url {}\nst2pack-fixture-lib\n", index.url()),
    )
    .unwrap();
    let lock_file = sandbox.path().join("st2packs.lock");
    let python = ["--runtime", "host", "--python", PYTHON];
    let mut lock = sandbox.command(env!("CARGO_BIN_EXE_st2pack"), &[]);
    lock.arg("lock")
        .arg(&pack)
        .args(["--allow-pack-index-options", "-o"])
        .arg(&lock_file)
        .args(python)
        .arg("--cache-dir")
        .arg(sandbox.path().join("lock-cache"));
    Run::from(lock.output().unwrap()).assert_ok();
    let locked = fs::read_to_string(&lock_file).unwrap();
    assert!(locked.contains("st2pack-fixture-lib"), "{locked}");
    assert!(
        !locked.contains(&index.url()),
        "the index stays in the pack: {locked}"
    );

    let before = index.connections();
    let install = sandbox
        .install_command(&[])
        .args([
            "--locked",
            lock_file.to_str().unwrap(),
            "--allow-pack-index-options",
        ])
        .args(["--python", PYTHON])
        .output()
        .unwrap();
    Run::from(install).assert_ok();
    assert!(
        index.connections() > before,
        "installed from the pack's index"
    );
    assert_eq!(
        sandbox.venv_python(
            "with_reqs",
            "import fixture_lib; print(fixture_lib.shout('hi'))"
        ),
        "HI!"
    );
}
