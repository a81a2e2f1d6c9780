//! The virtualenv engine against real uv, pip and Python, with wheels built by the test (offline).

mod common;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::wheel::{build_wheel, seed_wheelhouse, urlsafe_b64_nopad};
use st2pack::install::venv::{
    self, BuiltVenv, Installer, PythonInfo, ST2_PTH_FILE, VenvError, VenvRuntime, VenvSpec,
};

const GREETING: &str = "hello from helperlib";

/// A wheelhouse with pip and setuptools (bundled with python3), a marked `six`, and `greeter`
/// (console script `greet`) which needs `helperlib`.
fn wheelhouse(dir: &Path) -> PathBuf {
    let wh = dir.join("wheelhouse");
    seed_wheelhouse(&wh);
    build_wheel(
        &wh,
        "six",
        "1.16.0",
        &[("six.py", "MARKER = 'wheel'\n__version__ = '1.16.0'\n")],
        &[],
        &[],
    );
    build_wheel(
        &wh,
        "helperlib",
        "1.0",
        &[(
            "helperlib/__init__.py",
            &format!("def greet():\n    return {GREETING:?}\n"),
        )],
        &[],
        &[],
    );
    build_wheel(
        &wh,
        "greeter",
        "2.0",
        &[(
            "greeter.py",
            "import helperlib\n\ndef main():\n    print(helperlib.greet())\n",
        )],
        &[("greet", "greeter:main")],
        &["helperlib>=1.0"],
    );
    wh
}

async fn python() -> PythonInfo {
    venv::probe_python(Path::new("python3"))
        .await
        .expect("python3 on PATH")
}

fn uv_available() -> bool {
    let found = Command::new("uv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("!!! `uv` is not on PATH: SKIPPING the uv-engine test (CI installs uv) !!!");
    }
    found
}

fn requirements(dir: &Path, content: &str) -> PathBuf {
    let path = dir.join("requirements.txt");
    std::fs::write(&path, content).unwrap();
    path
}

fn spec(python: PythonInfo, installer: Installer, final_dir: &Path, tmp: &Path) -> VenvSpec {
    VenvSpec {
        python,
        installer,
        final_dir: final_dir.to_path_buf(),
        requirements: Some(requirements(tmp, "greeter\n")),
        allow_pack_index_options: false,
        only_binary: false,
        base_requirements: true,
        system_site_packages: false,
        st2_site_packages: None,
        wheelhouse: Some(wheelhouse(tmp)),
        cache_dir: None,
        bytecode_cache: None,
        rebuild: false,
        runtime: VenvRuntime::Native,
        keep_pip: true,
        locked_requirements: None,
    }
}

/// Runs `program` with the test's own Python variables removed.
fn run(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}\n{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn venv_python(venv: &Path, code: &str) -> String {
    run(&venv.join("bin/python"), &["-c", code])
}

/// Renames the staging dir to the final dir, as the install engine does.
fn commit(build: &Path, final_dir: &Path) {
    std::fs::create_dir_all(final_dir.parent().unwrap()).unwrap();
    std::fs::rename(build, final_dir).unwrap();
}

/// The venv works at `final_dir`: imports, the console script, sys.prefix.
fn assert_works_at(final_dir: &Path) {
    assert!(venv::is_intact(final_dir));
    assert_eq!(run(&final_dir.join("bin/greet"), &[]), GREETING);
    let prefix = venv_python(final_dir, "import sys; print(sys.prefix)");
    assert_eq!(Path::new(&prefix), final_dir);
    assert_eq!(
        venv_python(
            final_dir,
            "import six, greeter, helperlib; print(six.MARKER)"
        ),
        "wheel"
    );
    let setuptools = venv_python(
        final_dir,
        "import pkg_resources, setuptools; print(setuptools.__version__)",
    );
    let major: u32 = setuptools.split('.').next().unwrap().parse().unwrap();
    assert!(major < 81, "setuptools {setuptools}");
}

/// No file or link under `dir` still mentions `build` (text or binary).
fn assert_no_mention(dir: &Path, build: &Path) {
    let needle = build.as_os_str().as_bytes();
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.unwrap();
        let bytes = if entry.file_type().is_symlink() {
            std::fs::read_link(entry.path())
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else if entry.file_type().is_file() {
            std::fs::read(entry.path()).unwrap()
        } else {
            continue;
        };
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{} still mentions the build path {}",
            entry.path().display(),
            build.display()
        );
    }
}

/// Every .pyc is checked-hash (PEP 552 flags == 3), and the venv's modules were compiled.
fn assert_checked_hash_pyc(dir: &Path) {
    let mut count = 0;
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.unwrap();
        if entry.path().extension().is_some_and(|e| e == "pyc") {
            let bytes = std::fs::read(entry.path()).unwrap();
            let flags = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
            assert_eq!(flags, 3, "{} is not checked-hash", entry.path().display());
            count += 1;
        }
    }
    let six_pyc = walkdir::WalkDir::new(dir).into_iter().any(|e| {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy();
        name.starts_with("six.") && name.ends_with(".pyc")
    });
    assert!(
        six_pyc && count > 20,
        "only {count} .pyc, six compiled: {six_pyc}"
    );
}

async fn build_relocate_and_check(installer: Installer, final_name: &str) -> BuiltVenv {
    let tmp = tempfile::tempdir().unwrap();
    let final_dir = tmp.path().join(final_name).join("venv");
    let build = tmp.path().join("stage/venv.building");
    let spec = spec(python().await, installer, &final_dir, tmp.path());
    let started = Instant::now();
    let built = venv::build_venv(&spec, &build).await.unwrap();
    eprintln!("{installer} build took {:?}", started.elapsed());
    assert!(!built.from_cache);
    assert_eq!(built.key, venv::venv_key(&spec).unwrap());
    assert_eq!(built.python_version, spec.python.version);
    // The bundled wheels have no `wheel`: skipped with a warning, not a failure.
    assert!(
        built.warnings.iter().any(|w| w.contains("`wheel`")),
        "{:?}",
        built.warnings
    );
    commit(&build, &final_dir);
    assert_no_mention(&final_dir, &build);
    assert_short_shebangs(&final_dir);
    assert_works_at(&final_dir);
    assert_checked_hash_pyc(&final_dir);
    built
}

/// Every `#!` line in bin/ fits the 127-byte limit (long paths use the /bin/sh trampoline).
fn assert_short_shebangs(venv: &Path) {
    let python = venv.join("bin/python");
    let long = format!("#!{}", python.display()).len() + 1 > 127;
    for entry in std::fs::read_dir(venv.join("bin")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_symlink() {
            continue;
        }
        let content = std::fs::read(&path).unwrap();
        if !content.starts_with(b"#!") {
            continue;
        }
        let first = content.split(|&b| b == b'\n').next().unwrap();
        assert!(
            first.len() < 127,
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(first)
        );
        if long && path.ends_with("greet") {
            assert_eq!(first, b"#!/bin/sh", "{}", path.display());
        }
    }
}

#[tokio::test]
async fn uv_engine_builds_a_relocatable_venv_with_long_shebangs() {
    if !uv_available() {
        return;
    }
    // Long enough that `#!<final>/bin/python` exceeds the kernel's limit: needs the trampoline.
    let long = format!("opt/{}", "long-directory-name/".repeat(6));
    let built = build_relocate_and_check(Installer::Uv, &long).await;
    assert_eq!(built.installer, "uv");
}

#[tokio::test]
async fn pip_engine_builds_a_relocatable_venv() {
    let built = build_relocate_and_check(Installer::Pip, "opt/virtualenvs/mypack").await;
    assert_eq!(built.installer, "pip");
}

#[tokio::test]
async fn cache_hit_links_the_built_venv() {
    let tmp = tempfile::tempdir().unwrap();
    let final_dir = tmp.path().join("final/mypack");
    let mut spec = spec(python().await, Installer::Auto, &final_dir, tmp.path());
    spec.cache_dir = Some(tmp.path().join("cache"));
    spec.bytecode_cache = Some(tmp.path().join("bytecode"));

    let started = Instant::now();
    let first = venv::build_venv(&spec, &tmp.path().join("b1"))
        .await
        .unwrap();
    let cold = started.elapsed();
    assert!(!first.from_cache);
    assert!(tmp.path().join("cache").join(&first.key).is_dir());

    let started = Instant::now();
    let second = venv::build_venv(&spec, &tmp.path().join("b2"))
        .await
        .unwrap();
    let warm = started.elapsed();
    eprintln!(
        "cold build {cold:?}, warm build {warm:?} ({})",
        first.installer
    );
    assert!(second.from_cache);
    assert_eq!(second.key, first.key);
    assert_eq!(second.installer, first.installer);
    assert_eq!(second.warnings, first.warnings);
    commit(&tmp.path().join("b2"), &final_dir);
    assert_works_at(&final_dir);
    assert_checked_hash_pyc(&final_dir);
    // Hard-linked from the cache (a warm install creates no file contents); symlinks kept.
    use std::os::unix::fs::MetadataExt;
    let six = walkdir::WalkDir::new(&final_dir)
        .into_iter()
        .map(|e| e.unwrap())
        .find(|e| e.file_name() == "six.py")
        .unwrap();
    assert!(six.metadata().unwrap().nlink() >= 2);
    assert!(
        std::fs::symlink_metadata(final_dir.join("bin/python"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // A changed requirements file is another venv.
    std::fs::write(spec.requirements.as_ref().unwrap(), "greeter\nhelperlib\n").unwrap();
    let changed = venv::venv_key(&spec).unwrap();
    assert_ne!(changed, first.key);

    // --force rebuilds and refreshes the entry.
    std::fs::write(spec.requirements.as_ref().unwrap(), "greeter\n").unwrap();
    spec.rebuild = true;
    let forced = venv::build_venv(&spec, &tmp.path().join("b3"))
        .await
        .unwrap();
    assert!(!forced.from_cache);
    assert_eq!(forced.key, first.key);
    let entries: Vec<_> = std::fs::read_dir(tmp.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name != "bytecode")
        .collect();
    assert_eq!(entries, vec![first.key]);
}

#[tokio::test]
async fn a_failing_requirement_reports_the_installers_message() {
    let tmp = tempfile::tempdir().unwrap();
    let final_dir = tmp.path().join("final/broken");
    let mut spec = spec(python().await, Installer::Auto, &final_dir, tmp.path());
    spec.requirements = Some(requirements(tmp.path(), "nonexistent-pkg==1.0\n"));
    let err = venv::build_venv(&spec, &tmp.path().join("b"))
        .await
        .unwrap_err();
    let VenvError::Installer {
        command, output, ..
    } = &err
    else {
        panic!("expected an installer error, got {err}");
    };
    assert!(
        command == "uv pip install" || command == "python -m pip install",
        "{command}"
    );
    assert!(output.contains("nonexistent-pkg"), "{output}");
    let msg = err.to_string();
    assert!(msg.contains(&final_dir.display().to_string()), "{msg}");
    assert!(msg.contains("requirements.txt"), "{msg}");
}

#[tokio::test]
async fn a_missing_python_is_a_clear_error() {
    let err = venv::probe_python(Path::new("/nonexistent/bin/python3.8"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/bin/python3.8"), "{msg}");
    assert!(msg.contains("--python PATH"), "{msg}");
    let err = venv::probe_python(Path::new("python2.4-st2pack-test"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not found on PATH"), "{err}");
}

#[tokio::test]
async fn st2_site_packages_are_visible_through_a_pth() {
    let tmp = tempfile::tempdir().unwrap();
    let st2 = tmp.path().join("st2/site-packages");
    let extra = tmp.path().join("st2/extra");
    std::fs::create_dir_all(&st2).unwrap();
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(st2.join("st2marker.py"), "WHERE = 'st2'\n").unwrap();
    std::fs::write(extra.join("st2extra.py"), "WHERE = 'extra'\n").unwrap();
    // st2's own .pth files are honoured too, as upstream's addsitedir() does.
    std::fs::write(st2.join("extra.pth"), format!("{}\n", extra.display())).unwrap();

    let final_dir = tmp.path().join("final/withst2");
    let mut spec = spec(python().await, Installer::Auto, &final_dir, tmp.path());
    spec.st2_site_packages = Some(st2.clone());
    let build = tmp.path().join("b");
    venv::build_venv(&spec, &build).await.unwrap();
    commit(&build, &final_dir);
    let pth = walkdir::WalkDir::new(&final_dir)
        .into_iter()
        .map(|e| e.unwrap())
        .find(|e| e.file_name() == ST2_PTH_FILE)
        .expect("st2 .pth written");
    assert!(
        pth.path().parent().unwrap().ends_with("site-packages"),
        "{}",
        pth.path().display()
    );
    assert!(
        std::fs::read_to_string(pth.path())
            .unwrap()
            .contains(&st2.display().to_string())
    );
    assert_eq!(
        venv_python(
            &final_dir,
            "import st2marker, st2extra, six; print(st2marker.WHERE, st2extra.WHERE, six.MARKER)"
        ),
        "st2 extra wheel"
    );
}

/// Marks the child process of [`hostile_python_environment_does_not_leak`].
const CHILD_MARKER: &str = "ST2PACK_VENV_TEST_CHILD";

/// Environment variables must be set before any thread starts, so the hostile environment is
/// tested in a child test process.
#[test]
fn hostile_python_environment_does_not_leak() {
    let tmp = tempfile::tempdir().unwrap();
    let poison = tmp.path().join("poison");
    std::fs::create_dir_all(poison.join("six-1.16.0.dist-info")).unwrap();
    std::fs::write(
        poison.join("six.py"),
        "raise ImportError('six from PYTHONPATH')\n",
    )
    .unwrap();
    // A leaking pip would think six is already installed and skip it.
    std::fs::write(
        poison.join("six-1.16.0.dist-info/METADATA"),
        "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n",
    )
    .unwrap();
    std::fs::write(poison.join("six-1.16.0.dist-info/RECORD"), "").unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_build_with_hostile_environment",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MARKER, tmp.path())
        .env("PYTHONPATH", &poison)
        .env("PYTHONHOME", tmp.path().join("no-such-python-home"))
        .env("PIP_USER", "1")
        .env("UV_LINK_MODE", "hardlink")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child test failed:\n{stdout}\n{stderr}"
    );
}

#[tokio::test]
#[ignore = "run by hostile_python_environment_does_not_leak with a hostile environment"]
async fn child_build_with_hostile_environment() {
    let Some(tmp) = std::env::var_os(CHILD_MARKER).map(PathBuf::from) else {
        return;
    };
    let mut engines = vec![Installer::Pip];
    if uv_available() {
        engines.push(Installer::Uv);
    }
    for installer in engines {
        let final_dir = tmp.join(format!("final/{installer}"));
        let build = tmp.join(format!("build-{installer}"));
        let mut spec = spec(python().await, installer, &final_dir, &tmp);
        spec.requirements = None;
        venv::build_venv(&spec, &build).await.unwrap();
        commit(&build, &final_dir);
        assert_eq!(
            venv_python(&final_dir, "import six; print(six.MARKER)"),
            "wheel"
        );
        use std::os::unix::fs::MetadataExt;
        let six = walkdir::WalkDir::new(&final_dir)
            .into_iter()
            .map(|e| e.unwrap())
            .find(|e| e.file_name() == "six.py")
            .expect("six installed into the venv");
        assert_eq!(
            six.metadata().unwrap().nlink(),
            1,
            "{installer} hard-linked"
        );
    }
}

#[test]
fn record_hashes_use_urlsafe_base64_without_padding() {
    assert_eq!(urlsafe_b64_nopad(b""), "");
    assert_eq!(urlsafe_b64_nopad(b"f"), "Zg");
    assert_eq!(urlsafe_b64_nopad(b"fo"), "Zm8");
    assert_eq!(urlsafe_b64_nopad(b"foo"), "Zm9v");
    assert_eq!(urlsafe_b64_nopad(&[0xfb, 0xff]), "-_8");
}

/// Image virtualenvs leave out pip and wheel (they cannot install anything on the chart's
/// read-only volumes) and keep setuptools, whichever engine builds them.
#[tokio::test]
async fn a_lean_venv_has_setuptools_but_no_pip_with_either_engine() {
    let mut engines = vec![Installer::Pip];
    if uv_available() {
        engines.push(Installer::Uv);
    }
    for installer in engines {
        let tmp = tempfile::tempdir().unwrap();
        let final_dir = tmp.path().join("opt/virtualenvs/lean");
        let build = tmp.path().join("stage/lean.building");
        let mut lean = spec(python().await, installer, &final_dir, tmp.path());
        lean.keep_pip = false;
        let kept = spec(python().await, installer, &final_dir, tmp.path());
        assert_ne!(
            venv::venv_key(&lean).unwrap(),
            venv::venv_key(&kept).unwrap()
        );
        venv::build_venv(&lean, &build).await.unwrap();
        commit(&build, &final_dir);
        let found = venv_python(
            &final_dir,
            "import importlib.util as u; print([m for m in ('pip', 'wheel', 'setuptools', 'pkg_resources', 'greeter') if u.find_spec(m)])",
        );
        assert_eq!(
            found.trim(),
            "['setuptools', 'pkg_resources', 'greeter']",
            "{installer}"
        );
        assert!(!final_dir.join("bin/pip").exists(), "{installer}");
    }
}
