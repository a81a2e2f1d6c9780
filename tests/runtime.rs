//! Virtualenvs for another runtime than the build machine's: made here (Python 3.11) for
//! CPython 3.9 on `x86_64-manylinux_2_31`, then run where that runtime is, in a Debian bullseye
//! root entered with chroot (see `common::bullseye`), with the venv at its final path.
//!
//! The wheelhouse is the test's own: a pure wheel with a console script, a compiled extension
//! module with the stable ABI (built here with this machine's compiler and Python headers, as a
//! manylinux wheel would be), and source distributions whose in-tree build backend either
//! writes a pure wheel or compiles C for the interpreter that runs it, as setuptools would.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::extension::{add_target_wheels, build_backend_sdist, compile_fastmod, host_python};
use common::images::files_containing;
use common::run::Sandbox;
use common::wheel::{build_tagged_wheel, build_wheel};
use st2pack::runtime::{self, InstallOptions, RuntimeError, TargetRuntime};
use walkdir::WalkDir;

const FINAL: &str = "/opt/stackstorm/virtualenvs/demo";

fn bullseye_target() -> TargetRuntime {
    TargetRuntime::described("3.9", None, "x86_64-manylinux_2_31").unwrap()
}

fn offline(sandbox: &Sandbox, requirements: &[&str]) -> InstallOptions {
    let mut options = InstallOptions::new(requirements.iter().map(|r| r.to_string()).collect());
    options.wheelhouse = Some(sandbox.path().join("wheelhouse"));
    options.no_index = true;
    options.cache_dir = Some(sandbox.path().join("uv-cache"));
    options
}

#[test]
fn a_venv_made_here_for_python_3_9_runs_in_bullseye_at_its_final_path() {
    let sandbox = Sandbox::new();
    add_target_wheels(&sandbox.path().join("wheelhouse"), sandbox.path());

    // The venv is written where the overlay shows it at its final path inside the root.
    let upper = sandbox.path().join("upper");
    let dir = upper.join(FINAL.trim_start_matches('/'));
    let target = bullseye_target();
    let venv = runtime::make_virtualenv(
        &dir,
        Path::new(FINAL),
        &target,
        &offline(&sandbox, &["greeter", "fastmod", "puresdist"]),
    )
    .unwrap();
    assert_eq!(venv.scripts, ["greet"]);

    // The layout virtualenv makes there, and nothing of this machine's Python in it.
    let libs: Vec<_> = fs::read_dir(dir.join("lib"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(libs, ["python3.9"]);
    assert!(!dir.join("lib64").exists());
    assert_eq!(
        fs::read_link(dir.join("bin/python")).unwrap(),
        Path::new("/usr/bin/python3.9")
    );
    let script = fs::read_to_string(dir.join("bin/greet")).unwrap();
    assert!(
        script.starts_with(&format!("#!{FINAL}/bin/python\n")),
        "{script}"
    );
    let host_prefix = host_python("sys.base_prefix");
    let mut build_paths = vec![
        sandbox.path().display().to_string(),
        host_python("sys.executable"),
        "/root/.pyenv".to_string(),
    ];
    if host_prefix != "/usr" {
        build_paths.push(host_prefix);
    }
    for path in &build_paths {
        let leaks = files_containing(&dir, path);
        assert!(leaks.is_empty(), "{path} appears in {leaks:?}");
    }
    let pyc: Vec<_> = WalkDir::new(&dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "pyc"))
        .collect();
    assert!(pyc.is_empty(), "bytecode of this machine's Python: {pyc:?}");

    let run = common::bullseye::run(
        &upper,
        &format!(
            "{FINAL}/bin/python -c 'import sys, greeter, fastmod, puresdist; \
             assert sys.version_info[:2] == (3, 9), sys.version; \
             assert sys.prefix == \"{FINAL}\", sys.prefix; \
             print(\"answer\", fastmod.answer(), puresdist.VALUE)'
{FINAL}/bin/greet"
        ),
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "in bullseye:\n{stdout}\n{stderr}");
    assert!(stdout.contains("answer 42 from source"), "{stdout}");
    assert!(stdout.contains("hello from greeter"), "{stdout}");
}

/// Nothing at the venv's path, and no staging directory left beside it.
fn assert_nothing_written(dir: &Path) {
    assert!(!dir.exists(), "{} was written", dir.display());
    let parent = dir.parent().unwrap();
    let left: Vec<_> = fs::read_dir(parent)
        .map(|entries| entries.map(|entry| entry.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "left behind in {}: {left:?}",
        parent.display()
    );
}

#[test]
fn a_requirement_that_would_compile_for_this_machines_python_is_refused() {
    let sandbox = Sandbox::new();
    build_backend_sdist(&sandbox.path().join("wheelhouse"), "cext", "1.0", true);
    for only_binary in [false, true] {
        let dir = sandbox.path().join(format!("venvs-{only_binary}/demo"));
        let mut options = offline(&sandbox, &["cext==1.0"]);
        options.only_binary = only_binary;
        let error = runtime::make_virtualenv(&dir, Path::new(FINAL), &bullseye_target(), &options)
            .unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(&error, RuntimeError::NeedsCompiling { package, version, .. }
                if package == "cext" && version == "1.0"),
            "{message}"
        );
        for needle in ["`cext` 1.0", "cp39 manylinux_2_31_x86_64", "--wheelhouse"] {
            assert!(message.contains(needle), "{needle}: {message}");
        }
        assert_nothing_written(&dir);
    }
}

#[test]
fn an_extension_module_for_another_python_never_lands() {
    let sandbox = Sandbox::new();
    // Tagged for 3.9, but holding an extension module for 3.11.
    let fastmod = compile_fastmod(sandbox.path());
    build_tagged_wheel(
        &sandbox.path().join("wheelhouse"),
        "mislabelled",
        "1.0",
        "cp39-cp39-manylinux_2_17_x86_64",
        &[("fastmod.cpython-311-x86_64-linux-gnu.so", &fastmod)],
    );
    let dir = sandbox.path().join("venvs/demo");
    let error = runtime::make_virtualenv(
        &dir,
        Path::new(FINAL),
        &bullseye_target(),
        &offline(&sandbox, &["mislabelled"]),
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(&error, RuntimeError::ForeignBinary { file, .. }
            if file.ends_with("fastmod.cpython-311-x86_64-linux-gnu.so")),
        "{message}"
    );
    assert!(message.contains("cpython-311"), "{message}");
    assert_nothing_written(&dir);
}

#[test]
fn an_existing_venv_is_never_overwritten() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("venvs/demo");
    fs::create_dir_all(&dir).unwrap();
    let error = runtime::make_virtualenv(
        &dir,
        Path::new(FINAL),
        &bullseye_target(),
        &offline(&sandbox, &[]),
    )
    .unwrap_err();
    assert!(
        matches!(error, RuntimeError::DestinationExists { .. }),
        "{error}"
    );
    assert_eq!(error.exit_code(), 2);
}

#[test]
fn the_bullseye_interpreter_runs_here_with_its_own_loader_and_libraries() {
    let image = runtime::image_root::ImageRoot::new(common::bullseye::root());
    let python = image.find_python(None).unwrap();
    assert_eq!(python.interpreter, Path::new("/usr/bin/python3.9"));
    // Through a launcher script, as uv and the bytecode compiler take an interpreter path;
    // -I (isolated) as the bytecode compiler runs it: the image's stdlib is found without
    // PYTHONHOME.
    let scratch = Sandbox::new();
    let launcher = scratch.path().join("python3.9");
    runtime::image_root::write_launcher(&image.python_command(&python).unwrap(), &launcher)
        .unwrap();
    let output = Command::new(&launcher)
        .args([
            "-I",
            "-c",
            "import sys, ssl, sysconfig; print(sys.version_info[:2], ssl.OPENSSL_VERSION, \
             sysconfig.get_config_var('HOST_GNU_TYPE'))",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Bullseye's Python with bullseye's OpenSSL 1.1, not this machine's.
    assert!(stdout.starts_with("(3, 9) OpenSSL 1.1.1"), "{stdout}");
}

/// Network (PyPI): a real manylinux wheel with a CPython-3.9-only extension module, resolved
/// and installed here for 3.9, imports in bullseye. Run with `--run-ignored all`.
#[test]
#[ignore = "network: downloads MarkupSafe from PyPI"]
fn a_pypi_wheel_for_cpython_3_9_imports_in_bullseye() {
    let sandbox = Sandbox::new();
    let upper = sandbox.path().join("upper");
    let dir = upper.join(FINAL.trim_start_matches('/'));
    let mut options = InstallOptions::new(vec!["MarkupSafe==2.1.5".to_string()]);
    options.only_binary = true;
    options.cache_dir = Some(sandbox.path().join("uv-cache"));
    let venv =
        runtime::make_virtualenv(&dir, Path::new(FINAL), &bullseye_target(), &options).unwrap();
    let speedups: Vec<_> = fs::read_dir(venv.site_packages.join("markupsafe"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".so"))
        .collect();
    assert_eq!(speedups, ["_speedups.cpython-39-x86_64-linux-gnu.so"]);
    let run = common::bullseye::run(
        &upper,
        &format!("{FINAL}/bin/python -c 'import markupsafe._speedups as s; print(s.__file__)'"),
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("cpython-39-x86_64-linux-gnu.so"),
        "{stdout}"
    );
}

/// The image's interpreter, run here through its launcher, compiles a target venv's bytecode
/// with the engine's own compiler: every `.pyc` is for 3.9 (bullseye's magic number), names no
/// path of this machine, and is what bullseye's Python loads.
#[tokio::test(flavor = "multi_thread")]
async fn bytecode_compiled_here_by_the_image_interpreter_is_for_its_python() {
    let sandbox = Sandbox::new();
    build_wheel(
        &sandbox.path().join("wheelhouse"),
        "greeter",
        "1.0",
        &[(
            "greeter.py",
            "def main():\n    print('hello from greeter')\n",
        )],
        &[],
        &[],
    );
    let upper = sandbox.path().join("upper");
    let dir = upper.join(FINAL.trim_start_matches('/'));
    let venv = runtime::make_virtualenv(
        &dir,
        Path::new(FINAL),
        &bullseye_target(),
        &offline(&sandbox, &["greeter"]),
    )
    .unwrap();

    let image = runtime::image_root::ImageRoot::new(common::bullseye::root());
    let python = image.find_python(None).unwrap();
    let launcher = sandbox.path().join("python3.9");
    runtime::image_root::write_launcher(&image.python_command(&python).unwrap(), &launcher)
        .unwrap();
    let warnings = st2pack::install::venv::compile_bytecode(&launcher, &dir, None, &[])
        .await
        .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");

    let pyc = venv
        .site_packages
        .join("__pycache__/greeter.cpython-39.pyc");
    assert!(pyc.is_file(), "no bytecode for 3.9 at {}", pyc.display());
    let stray: Vec<_> = WalkDir::new(&dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "pyc"))
        .filter(|entry| !entry.file_name().to_string_lossy().contains(".cpython-39."))
        .collect();
    assert!(stray.is_empty(), "bytecode of another Python: {stray:?}");
    let leaks = files_containing(&dir, &sandbox.path().display().to_string());
    assert!(leaks.is_empty(), "the build directory appears in {leaks:?}");

    let run = common::bullseye::run(
        &upper,
        &format!(
            "{FINAL}/bin/python -c 'import importlib.util, sys, greeter; \
             print(open(greeter.__cached__, \"rb\").read(4) == importlib.util.MAGIC_NUMBER)'"
        ),
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(stdout.trim(), "True");
}
