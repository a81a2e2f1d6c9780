//! What a pack's requirements.txt may ask of the installer, through the real `st2-pack-install`
//! with real virtualenvs: no host file is read, no pack-chosen index is contacted unless the user
//! allows it, and `--only-binary` never runs a package's build code.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::repos::copy_fixture;
use common::run::{Run, Sandbox};
use common::servers::PackageIndex;
use common::wheel::{build_sdist, build_wheel};

/// A copy of the `with_reqs` fixture pack (it requires `st2pack-fixture-lib`) under
/// `<sandbox>/src/with_reqs`, with `requirements` as its requirements.txt.
fn pack_with(sandbox: &Sandbox, requirements: &str) -> PathBuf {
    let src = sandbox.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let pack = src.join("with_reqs");
    if !pack.exists() {
        copy_fixture("with_reqs", &pack);
    }
    fs::write(pack.join("requirements.txt"), requirements).unwrap();
    pack
}

/// The install failed for the pack, naming `located` (`file:line: option`), and left no
/// virtualenv behind.
fn assert_refused(sandbox: &Sandbox, run: &Run, located: &str) {
    run.assert_code(1).assert_stderr_has(located);
    assert!(
        !sandbox.venvs().join("with_reqs").exists(),
        "a virtualenv was built:\n{}",
        run.stderr
    );
}

const SECRET: &str = "st2pack-host-secret-7f3a9c";

#[test]
fn a_pack_cannot_make_the_build_read_host_files() {
    let sandbox = Sandbox::new();
    let host_file = sandbox.path().join("src/host-secret.txt");
    let pack = pack_with(&sandbox, "");
    fs::write(&host_file, format!("{SECRET}\n")).unwrap();

    let absolute = format!("-r {}", host_file.display());
    for (requirements, located) in [
        (
            format!("six\n{absolute}\n"),
            format!("requirements.txt:2: {absolute}"),
        ),
        (
            "-c ../host-secret.txt\n".to_string(),
            "requirements.txt:1: -c ../host-secret.txt".to_string(),
        ),
        (
            format!("--requirement file://{}\n", host_file.display()),
            "requirements.txt:1: --requirement file://".to_string(),
        ),
    ] {
        pack_with(&sandbox, &requirements);
        let run = sandbox.install(&[pack.to_str().unwrap()]);
        assert_refused(&sandbox, &run, &located);
        assert!(!run.stderr.contains(SECRET), "{}", run.stderr);
    }

    // A symlink in the pack to a host file, as an include and as the requirements file itself:
    // refused as a link out of the pack before any requirement is read.
    pack_with(&sandbox, "-r reqs/extra.txt\n");
    fs::create_dir(pack.join("reqs")).unwrap();
    symlink(&host_file, pack.join("reqs/extra.txt")).unwrap();
    let run = sandbox.install(&[pack.to_str().unwrap()]);
    assert_refused(&sandbox, &run, "reqs/extra.txt -> ");
    assert!(!run.stderr.contains(SECRET), "{}", run.stderr);
    fs::remove_file(pack.join("requirements.txt")).unwrap();
    symlink(&host_file, pack.join("requirements.txt")).unwrap();
    let run = sandbox.install(&[pack.to_str().unwrap()]);
    assert_refused(&sandbox, &run, "requirements.txt -> ");
    assert!(!run.stderr.contains(SECRET), "{}", run.stderr);
}

#[test]
fn a_pack_cannot_choose_the_index_and_the_index_hears_nothing() {
    let sandbox = Sandbox::new();
    let index = PackageIndex::serve(&sandbox.wheelhouse());
    let pack = pack_with(
        &sandbox,
        &format!("--index-url {}\nst2pack-fixture-lib\n", index.url()),
    );
    // No --wheelhouse: the pack's index is the only one the installer would use.
    let run = Run::from(
        sandbox
            .install_command(&[])
            .arg(&pack)
            .output()
            .expect("st2-pack-install runs"),
    );
    assert_refused(
        &sandbox,
        &run,
        &format!("requirements.txt:1: --index-url {}", index.url()),
    );
    run.assert_stderr_has("--allow-pack-index-options");
    assert_eq!(index.connections(), 0, "the pack's index was contacted");
}

#[test]
fn index_trust_and_host_path_options_are_refused_each() {
    let sandbox = Sandbox::new();
    let marker = sandbox.path().join("setup-py-ran");
    let host_project = sandbox.path().join("host-project");
    fs::create_dir(&host_project).unwrap();
    fs::write(
        host_project.join("setup.py"),
        format!(
            "open({:?}, 'w').write('ran')\nfrom setuptools import setup\nsetup(name='hostpkg', \
             version='1.0')\n",
            marker.display().to_string()
        ),
    )
    .unwrap();
    let pack = pack_with(&sandbox, "");
    let editable = format!("-e {}", host_project.display());
    for (line, shown) in [
        (
            "--extra-index-url http://127.0.0.1:9/simple/",
            "--extra-index-url http://127.0.0.1:9/simple/",
        ),
        (
            "-f http://127.0.0.1:9/wheels/",
            "-f http://127.0.0.1:9/wheels/",
        ),
        ("--find-links=./wheels", "--find-links ./wheels"),
        (
            "--trusted-host pypi.example.invalid",
            "--trusted-host pypi.example.invalid",
        ),
        (editable.as_str(), editable.as_str()),
    ] {
        pack_with(&sandbox, &format!("st2pack-fixture-lib\n{line}\n"));
        let run = sandbox.install(&[pack.to_str().unwrap()]);
        assert_refused(&sandbox, &run, &format!("requirements.txt:2: {shown}"));
    }
    assert!(!marker.exists(), "the host project's setup.py ran");
}

#[test]
fn allow_pack_index_options_lets_a_trusted_pack_use_its_own_index() {
    let sandbox = Sandbox::new();
    let wheelhouse = sandbox.wheelhouse();
    let index = PackageIndex::serve_for_installs(&wheelhouse);
    let pack = pack_with(
        &sandbox,
        &format!("--index-url {}\nst2pack-fixture-lib\n", index.url()),
    );
    let run = Run::from(
        sandbox
            .install_command(&[])
            .arg("--allow-pack-index-options")
            .arg(&pack)
            .output()
            .expect("st2-pack-install runs"),
    );
    run.assert_ok();
    assert!(index.connections() > 0);
    assert_eq!(
        sandbox.venv_python(
            "with_reqs",
            "import fixture_lib; print(fixture_lib.shout('hi'))"
        ),
        "HI!"
    );
}

#[test]
fn an_include_inside_the_pack_is_installed_and_its_changes_rebuild_the_virtualenv() {
    let sandbox = Sandbox::new();
    build_wheel(
        &sandbox.wheelhouse(),
        "st2pack-extra-lib",
        "1.0",
        &[("extra_lib.py", "NAME = 'extra'\n")],
        &[],
        &[],
    );
    // Saved by an editor that starts files with a byte order mark, as pip and uv read them.
    let pack = pack_with(&sandbox, "\u{feff}-r reqs/base.txt\t# shared pins\nsix\n");
    fs::create_dir(pack.join("reqs")).unwrap();
    fs::write(pack.join("reqs/base.txt"), "st2pack-fixture-lib>=1.0\n").unwrap();
    sandbox.install(&[pack.to_str().unwrap()]).assert_ok();
    assert_eq!(
        sandbox.venv_python(
            "with_reqs",
            "import fixture_lib; print(fixture_lib.shout('hi'))"
        ),
        "HI!"
    );

    // A change in the included file alone is a new virtualenv, not the cached one.
    fs::write(
        pack.join("reqs/base.txt"),
        "st2pack-fixture-lib>=1.0\nst2pack-extra-lib\n",
    )
    .unwrap();
    sandbox.install(&[pack.to_str().unwrap()]).assert_ok();
    assert_eq!(
        sandbox.venv_python("with_reqs", "import extra_lib; print(extra_lib.NAME)"),
        "extra"
    );
}

/// A wheelhouse holding only an sdist of `st2pack-sdist-only`, whose setup.py leaves `marker`.
fn sdist_only(sandbox: &Sandbox, marker: &Path) {
    let code = format!("open({:?}, 'w').write('ran')", marker.display().to_string());
    build_sdist(&sandbox.wheelhouse(), "st2pack-sdist-only", "1.0", &code);
}

#[test]
fn only_binary_never_runs_a_packages_build_code() {
    let sandbox = Sandbox::new();
    let marker = sandbox.path().join("sdist-setup-ran");
    sdist_only(&sandbox, &marker);
    let pack = pack_with(&sandbox, "st2pack-sdist-only\n");
    for installer in ["pip", "uv"] {
        let run = sandbox.install(&[
            "--only-binary",
            "--installer",
            installer,
            pack.to_str().unwrap(),
        ]);
        assert_refused(&sandbox, &run, "st2pack-sdist-only");
        assert!(!marker.exists(), "{installer} ran the sdist's setup.py");
    }
    // A source line in the pack itself is refused before any installer runs.
    pack_with(&sandbox, "st2pack-fixture-lib\n--no-binary :all:\n");
    let run = sandbox.install(&["--only-binary", pack.to_str().unwrap()]);
    assert_refused(&sandbox, &run, "requirements.txt:2: --no-binary :all:");

    // Without --only-binary the same requirement runs the sdist's code: what the flag prevents.
    pack_with(&sandbox, "st2pack-sdist-only\n");
    let _ = sandbox.install(&[pack.to_str().unwrap()]);
    assert!(
        marker.exists(),
        "the sdist was not built without --only-binary"
    );
}
