//! `st2pack build` for the cluster's runtime from this machine (Python 3.11): images pushed to a
//! real registry, read back with skopeo and umoci, copied out by the chart's own init-container
//! step, then used where the runtime is, in a Debian bullseye root (CPython 3.9, glibc 2.31 as
//! Ubuntu focal's) entered with chroot, with the copied trees at `/opt/stackstorm`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::extension::{add_target_wheels, build_backend_sdist, host_python};
use common::images::{CHART_COPY, files_containing, pull_and_unpack, push_busybox_base};
use common::registry::TestRegistry;
use common::run::{Run, Sandbox};
use walkdir::WalkDir;

const DESCRIBED: [&str; 4] = [
    "--target-python",
    "3.9",
    "--target-platform",
    "x86_64-manylinux_2_31",
];

/// The sandbox's wheelhouse, with what a target runtime's install is tested with added.
fn fill_wheelhouse(sandbox: &Sandbox) -> PathBuf {
    let wheelhouse = sandbox.wheelhouse();
    add_target_wheels(&wheelhouse, sandbox.path());
    wheelhouse
}

/// A pack whose action imports its requirements.
fn write_pack(root: &Path, name: &str, requirements: &str) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir_all(dir.join("actions")).unwrap();
    fs::write(
        dir.join("pack.yaml"),
        format!(
            "ref: {name}\nname: {name}\ndescription: test\nversion: 1.0.0\nauthor: t\nemail: t@example.com\n"
        ),
    )
    .unwrap();
    fs::write(dir.join("requirements.txt"), requirements).unwrap();
    let imports: Vec<&str> = requirements.lines().filter(|l| !l.is_empty()).collect();
    fs::write(
        dir.join("actions/act.py"),
        format!(
            "import {}\n\ndef run():\n    return 'ran'\n",
            imports.join(", ")
        ),
    )
    .unwrap();
    dir
}

/// Bullseye's `python3.9` as a program of this machine: a launcher that runs it with the root's
/// own loader and libraries.
fn bullseye_python(sandbox: &Sandbox) -> PathBuf {
    use st2pack::runtime::image_root::{ImageRoot, write_launcher};
    let image = ImageRoot::new(common::bullseye::root());
    let python = image.find_python(None).unwrap();
    let launcher = sandbox.path().join("bullseye-python3.9");
    write_launcher(&image.python_command(&python).unwrap(), &launcher).unwrap();
    launcher
}

/// A PATH with only uv, this machine's python3 (to build pure source distributions) and the
/// system's directories: no interpreter of 3.9 for `uv python find` to come across.
fn path_without_python_3_9(sandbox: &Sandbox) -> String {
    let bin = sandbox.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    // The uv binary itself: a version manager's shim on PATH would need the rest of PATH.
    let uv = host_python("__import__('uv').find_uv_bin()");
    std::os::unix::fs::symlink(uv, bin.join("uv")).unwrap();
    std::os::unix::fs::symlink(host_python("sys.executable"), bin.join("python3")).unwrap();
    format!("{}:/usr/bin:/bin", bin.display())
}

fn st2pack(sandbox: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = sandbox.command(env!("CARGO_BIN_EXE_st2pack"), env);
    command.args(args);
    Run::from(command.output().unwrap())
}

/// `st2pack build` with the sandbox's cache and wheelhouse (offline), then `args`.
fn build(sandbox: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Run {
    let cache = sandbox.cache();
    let wheelhouse = sandbox.wheelhouse();
    let mut all = vec![
        "build",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--wheelhouse",
        wheelhouse.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    st2pack(sandbox, &all, env)
}

fn checked(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Pulls `reference` with skopeo, unpacks it with umoci, runs the chart's copy step in it, and
/// returns the overlay directory that puts the copied trees at `/opt/stackstorm` in bullseye.
fn copied_by_the_chart(reference: &str, work: &Path) -> PathBuf {
    let inspected = checked(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ],
    );
    assert!(
        inspected.contains("org.stackstorm.st2pack.packs"),
        "{inspected}"
    );
    let rootfs = pull_and_unpack(reference, work);
    for dir in [
        "opt/stackstorm/packs-shared",
        "opt/stackstorm/virtualenvs-shared",
    ] {
        fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    let copy = Command::new("chroot")
        .arg(&rootfs)
        .args(["/bin/sh", "-ec", CHART_COPY])
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "the chart's copy step: {}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let upper = work.join("upper");
    fs::create_dir_all(upper.join("opt/stackstorm")).unwrap();
    for (from, to) in [
        ("packs-shared", "packs"),
        ("virtualenvs-shared", "virtualenvs"),
    ] {
        let status = Command::new("cp")
            .arg("-a")
            .arg(rootfs.join("opt/stackstorm").join(from))
            .arg(upper.join("opt/stackstorm").join(to))
            .status()
            .unwrap();
        assert!(status.success());
    }
    upper
}

/// No `.pyc` of another Python than bullseye's 3.9.
fn assert_only_for_python_3_9(bytecode: &[PathBuf]) {
    let foreign: Vec<_> = bytecode
        .iter()
        .filter(|p| !p.to_string_lossy().contains(".cpython-39."))
        .collect();
    assert!(
        foreign.is_empty(),
        "bytecode of another Python: {foreign:?}"
    );
}

/// Every `.pyc` under `dir`.
fn bytecode_files(dir: &Path) -> Vec<PathBuf> {
    WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "pyc"))
        .map(|entry| entry.path().to_path_buf())
        .collect()
}

/// In bullseye, each pack's virtualenv python is 3.9, imports the pack's requirements and its
/// action module, and loads the `.pyc` it was given when there is one.
fn assert_runs_in_bullseye(upper: &Path, packs: &[&str]) {
    let mut script = String::new();
    for pack in packs {
        script.push_str(&format!(
            "cd /opt/stackstorm/packs/{pack}/actions && /opt/stackstorm/virtualenvs/{pack}/bin/python -c '\
import sys, act, fastmod, greeter
assert sys.version_info[:2] == (3, 9), sys.version
assert sys.prefix == \"/opt/stackstorm/virtualenvs/{pack}\", sys.prefix
print(\"{pack}\", act.run(), fastmod.answer())'\n"
        ));
    }
    let run = common::bullseye::run(upper, &script);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "in bullseye:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for pack in packs {
        assert!(stdout.contains(&format!("{pack} ran 42")), "{stdout}");
    }
}

/// No path of this machine (the sandbox with its cache and staging, this machine's Python) in
/// any file of the trees, but for the pin naming the pack's source directory as it was given.
fn assert_no_build_paths(upper: &Path, sandbox: &Sandbox) {
    let mut paths = vec![
        sandbox.path().display().to_string(),
        host_python("sys.executable"),
        common::bullseye::root().display().to_string(),
    ];
    let prefix = host_python("sys.base_prefix");
    if prefix != "/usr" {
        paths.push(prefix);
    }
    for path in paths {
        let leaks: Vec<_> = files_containing(upper, &path)
            .into_iter()
            .filter(|file| !file.ends_with(".st2pack.json"))
            .collect();
        assert!(leaks.is_empty(), "{path} appears in {leaks:?}");
    }
}

#[test]
fn a_described_runtime_with_bytecode_from_its_own_python_runs_in_bullseye() {
    let sandbox = Sandbox::new();
    let registry = TestRegistry::start_plain();
    fill_wheelhouse(&sandbox);
    let base = push_busybox_base(&sandbox, &registry);
    let packs = sandbox.path().join("src");
    let first = write_pack(&packs, "first", "greeter\nfastmod\npuresdist\n");
    let second = write_pack(&packs, "second", "fastmod\ngreeter\n");
    let tag = format!("{}/st2/packs:described", registry.host());
    let python = bullseye_python(&sandbox);

    let mut args = vec![first.to_str().unwrap(), second.to_str().unwrap()];
    args.extend(DESCRIBED);
    args.extend([
        "--bytecode-python",
        python.to_str().unwrap(),
        "--base",
        &base,
        "--tag",
        &tag,
        "--push",
    ]);
    let run = build(&sandbox, &args, &[]);
    run.assert_ok();
    assert!(!run.stderr.contains("no bytecode"), "{}", run.stderr);

    let work = sandbox.path().join("work");
    let upper = copied_by_the_chart(&tag, &work);
    let opt = upper.join("opt/stackstorm");
    // Only pip and wheel are left out: setuptools stays, for packs importing pkg_resources.
    let site = opt.join("virtualenvs/first/lib/python3.9/site-packages");
    assert!(site.join("pkg_resources").is_dir());
    assert!(!site.join("pip").exists() && !opt.join("virtualenvs/first/bin/pip").exists());
    let libs: Vec<_> = fs::read_dir(opt.join("virtualenvs/first/lib"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(libs, ["python3.9"]);

    let bytecode = bytecode_files(&opt);
    assert!(
        bytecode
            .iter()
            .any(|p| p.ends_with("packs/first/actions/__pycache__/act.cpython-39.pyc")),
        "the pack's action was not compiled"
    );
    assert!(
        bytecode
            .iter()
            .any(|p| p.ends_with("site-packages/__pycache__/greeter.cpython-39.pyc"))
    );
    assert_only_for_python_3_9(&bytecode);
    assert_no_build_paths(&upper, &sandbox);
    assert_runs_in_bullseye(&upper, &["first", "second"]);

    // Bullseye's Python takes the bytecode as it is: checked-hash, for its magic number.
    let check = common::bullseye::run(
        &upper,
        "cd /opt/stackstorm/packs/first/actions && /opt/stackstorm/virtualenvs/first/bin/python -c '\
import importlib.util, act\nassert open(act.__cached__, \"rb\").read(4) == importlib.util.MAGIC_NUMBER\nprint(\"magic ok\")'",
    );
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("magic ok"),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // The runtime is recorded per pack in the label, and shown by inspect.
    let inspect = st2pack(&sandbox, &["inspect", "--json", &tag], &[]);
    inspect.assert_ok();
    let text = inspect.stdout.clone();
    assert!(text.contains("x86_64-manylinux_2_31"), "{text}");
    assert!(text.contains("/usr/bin/python3.9"), "{text}");
    let pin: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(opt.join("packs/first/.st2pack.json")).unwrap())
            .unwrap();
    assert_eq!(pin["virtualenv"]["runtime"]["kind"], "described");
    assert_eq!(pin["virtualenv"]["runtime"]["python"], "3.9");
}

#[test]
fn a_described_runtime_without_its_python_here_writes_no_bytecode_and_says_so() {
    let sandbox = Sandbox::new();
    let registry = TestRegistry::start_plain();
    fill_wheelhouse(&sandbox);
    let base = push_busybox_base(&sandbox, &registry);
    let pack = write_pack(
        &sandbox.path().join("src"),
        "first",
        "greeter\nfastmod\npuresdist\n",
    );
    let tag = format!("{}/st2/packs:nobytecode", registry.host());
    let path = path_without_python_3_9(&sandbox);
    let python_dir = sandbox.path().join("no-managed-pythons");

    let mut args = vec![pack.to_str().unwrap()];
    args.extend(DESCRIBED);
    args.extend(["--base", &base, "--tag", &tag, "--push"]);
    let env = [
        ("PATH", path.as_str()),
        ("UV_PYTHON_INSTALL_DIR", python_dir.to_str().unwrap()),
    ];
    let run = build(&sandbox, &args, &env);
    run.assert_ok();
    run.assert_stderr_has("no bytecode was written");
    run.assert_stderr_has("--bytecode-python");

    let upper = copied_by_the_chart(&tag, &sandbox.path().join("work"));
    let bytecode = bytecode_files(&upper);
    assert!(bytecode.is_empty(), "bytecode written: {bytecode:?}");
    assert_no_build_paths(&upper, &sandbox);
    assert_runs_in_bullseye(&upper, &["first"]);
}

#[test]
fn the_default_outside_an_st2_image_is_the_charts_runtime_and_host_warns() {
    let sandbox = Sandbox::new();
    fill_wheelhouse(&sandbox);
    let pack = write_pack(&sandbox.path().join("src"), "first", "greeter\n");
    let layout = sandbox.path().join("layout");
    let output = format!("oci:{}", layout.display());
    let run = build(
        &sandbox,
        &[
            pack.to_str().unwrap(),
            "--base",
            "scratch",
            "--tag",
            "p:1",
            "--output",
            &output,
        ],
        &[],
    );
    run.assert_ok();
    run.assert_stderr_has("building the virtualenvs for st2-3.8, the chart's default runtime");
    let root = sandbox.cache().join("build-roots-v1/default");
    assert_eq!(
        fs::read_link(root.join("virtualenvs/first/bin/python")).unwrap(),
        Path::new("/usr/bin/python3.8")
    );
    assert!(
        root.join("virtualenvs/first/lib/python3.8/site-packages/greeter.py")
            .is_file()
    );

    // The same pack for this machine: a new virtualenv (never the cached one of st2-3.8).
    let run = build(
        &sandbox,
        &[
            pack.to_str().unwrap(),
            "--runtime",
            "host",
            "--python",
            "/usr/bin/python3",
            "--base",
            "scratch",
            "--tag",
            "p:2",
            "--output",
            &output,
            "--json",
        ],
        &[],
    );
    run.assert_ok();
    run.assert_stderr_has("warning: --runtime host");
    run.assert_stderr_has("only run where that interpreter exists at that path");
    assert!(!root.join("virtualenvs/first/lib/python3.8").exists());
    let pin: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(root.join("packs/first/.st2pack.json")).unwrap())
            .unwrap();
    assert_eq!(pin["virtualenv"]["runtime"]["kind"], "native");
}

#[test]
fn a_root_built_for_another_runtime_is_refused_with_both_named() {
    let sandbox = Sandbox::new();
    fill_wheelhouse(&sandbox);
    let pack = write_pack(&sandbox.path().join("src"), "first", "greeter\n");
    let root = sandbox.path().join("root");
    let layout = sandbox.path().join("layout");
    let output = format!("oci:{}", layout.display());
    let common = [
        "--root",
        root.to_str().unwrap(),
        "--base",
        "scratch",
        "--tag",
        "p:1",
        "--output",
        &output,
    ];
    let mut args = vec![pack.to_str().unwrap(), "--runtime", "st2-3.8"];
    args.extend(common);
    build(&sandbox, &args, &[]).assert_ok();
    let pin_before = fs::read(root.join("packs/first/.st2pack.json")).unwrap();
    fs::remove_dir_all(&layout).unwrap();

    for asked in [
        vec![pack.to_str().unwrap(), "--runtime", "st2-3.9"],
        vec!["--runtime", "st2-3.9"],
        vec![
            pack.to_str().unwrap(),
            "--target-python",
            "3.8",
            "--target-platform",
            "x86_64-manylinux_2_35",
        ],
    ] {
        let mut args = asked.clone();
        args.extend(common);
        let run = build(&sandbox, &args, &[]);
        run.assert_code(2);
        run.assert_stderr_has(&format!("--root {}", root.display()));
        run.assert_stderr_has(
            "built for CPython 3.8 at /usr/bin/python3.8 on x86_64-manylinux_2_31 (st2-3.8)",
        );
        assert!(!layout.exists(), "{asked:?} wrote the image");
        assert_eq!(
            fs::read(root.join("packs/first/.st2pack.json")).unwrap(),
            pin_before
        );
    }
}

#[test]
fn bad_runtime_input_is_refused_clearly_and_writes_nothing() {
    let sandbox = Sandbox::new();
    fill_wheelhouse(&sandbox);
    build_backend_sdist(&sandbox.wheelhouse(), "compiledsdist", "1.0", true);
    let pure = write_pack(&sandbox.path().join("src"), "first", "greeter\n");
    let compiled = write_pack(&sandbox.path().join("src"), "second", "compiledsdist\n");
    let layout = sandbox.path().join("layout");
    let output = format!("oci:{}", layout.display());
    let python = bullseye_python(&sandbox);
    let host = host_python("sys.executable");
    let cases: Vec<(Vec<&str>, i32, Vec<&str>)> = vec![
        (
            [vec![compiled.to_str().unwrap()], DESCRIBED.to_vec()].concat(),
            1,
            vec![
                "`compiledsdist` 1.0",
                "cp39",
                "--wheelhouse",
                "--runtime-image",
            ],
        ),
        (
            vec![pure.to_str().unwrap(), "--runtime", "st2-4.0"],
            2,
            vec!["unknown runtime `st2-4.0`", "st2-3.8, st2-3.9"],
        ),
        (
            vec![
                pure.to_str().unwrap(),
                "--target-python",
                "3.9",
                "--target-platform",
                "x86_64-manylinux_2_x",
            ],
            2,
            vec![
                "--target-platform `x86_64-manylinux_2_x`",
                "x86_64-manylinux_2_31",
            ],
        ),
        (
            vec![
                pure.to_str().unwrap(),
                "--target-python",
                "2.7",
                "--target-platform",
                "x86_64-manylinux_2_31",
            ],
            2,
            vec!["--target-python `2.7`", "3.6 or later"],
        ),
        (
            [
                vec![pure.to_str().unwrap()],
                DESCRIBED.to_vec(),
                vec!["--bytecode-python", host.as_str()],
            ]
            .concat(),
            2,
            vec!["--bytecode-python", "but the target is Python 3.9"],
        ),
        (
            vec![
                pure.to_str().unwrap(),
                "--runtime",
                "host",
                "--bytecode-python",
                python.to_str().unwrap(),
            ],
            2,
            vec!["--bytecode-python", "leave it out"],
        ),
    ];
    for (args, code, needles) in cases {
        let mut all = args.clone();
        all.extend(["--base", "scratch", "--tag", "p:1", "--output", &output]);
        let run = build(&sandbox, &all, &[]);
        run.assert_code(code);
        for needle in needles {
            run.assert_stderr_has(needle);
        }
        assert!(!layout.exists(), "{args:?} wrote the image");
    }
}

#[test]
fn a_target_whose_interpreter_is_this_machines_is_built_natively() {
    let sandbox = Sandbox::new();
    fill_wheelhouse(&sandbox);
    let pack = write_pack(&sandbox.path().join("src"), "first", "greeter\n");
    let ask = |code: &str| {
        checked("/usr/bin/python3", &["-I", "-c", code])
            .trim()
            .to_string()
    };
    let version = ask("import sys; print('%d.%d' % sys.version_info[:2])");
    let interpreter = ask("import sys; print(sys.executable)");
    let glibc = ask("import platform; print(platform.libc_ver()[1].replace('.', '_'))");
    let platform = format!("x86_64-manylinux_{glibc}");
    let layout = sandbox.path().join("layout");
    let output = format!("oci:{}", layout.display());
    let run = build(
        &sandbox,
        &[
            pack.to_str().unwrap(),
            "--target-python",
            &version,
            "--target-interpreter",
            &interpreter,
            "--target-platform",
            &platform,
            "--base",
            "scratch",
            "--tag",
            "p:1",
            "--output",
            &output,
        ],
        &[],
    );
    run.assert_ok();
    run.assert_stderr_has(&format!("{interpreter} is the runtime's own interpreter"));
    let venv = sandbox
        .cache()
        .join("build-roots-v1/default/virtualenvs/first");
    assert_eq!(
        fs::read_link(venv.join("bin/python")).unwrap(),
        Path::new(&interpreter)
    );
    let tag = version.replace('.', "");
    assert!(
        bytecode_files(&venv).iter().any(|p| p
            .to_string_lossy()
            .ends_with(&format!("greeter.cpython-{tag}.pyc"))),
        "a native build compiles its bytecode"
    );
}

#[test]
fn a_runtime_image_from_the_registry_builds_with_its_own_interpreter_and_runs_in_bullseye() {
    let sandbox = Sandbox::new();
    let registry = TestRegistry::start_plain();
    fill_wheelhouse(&sandbox);
    let base = push_busybox_base(&sandbox, &registry);
    let runtime =
        common::runtime_image::push(&registry, common::runtime_image::ST2, "stackstorm/st2");
    let packs = sandbox.path().join("src");
    let first = write_pack(&packs, "first", "greeter\nfastmod\npuresdist\n");
    let second = write_pack(&packs, "second", "fastmod\ngreeter\n");
    let tag = format!("{}/st2/packs:image", registry.host());

    let run = build(
        &sandbox,
        &[
            first.to_str().unwrap(),
            second.to_str().unwrap(),
            "--runtime-image",
            &runtime,
            "--base",
            &base,
            "--tag",
            &tag,
            "--push",
        ],
        &[],
    );
    run.assert_ok();
    run.assert_stderr_has(&format!(
        "building the virtualenvs with the runtime image {runtime}"
    ));
    assert!(!run.stderr.contains("no bytecode"), "{}", run.stderr);

    let upper = copied_by_the_chart(&tag, &sandbox.path().join("work"));
    let opt = upper.join("opt/stackstorm");
    // st2's own site-packages is visible through the .pth st2 3.9 writes.
    let pth = opt.join("virtualenvs/first/lib/python3.9/site-packages/zzzzzzzzzz__st2__.pth");
    assert!(
        fs::read_to_string(&pth)
            .unwrap()
            .contains(common::runtime_image::ST2_SITE_PACKAGES)
    );
    let bytecode = bytecode_files(&opt);
    assert!(
        bytecode
            .iter()
            .any(|p| p.ends_with("packs/second/actions/__pycache__/act.cpython-39.pyc"))
    );
    assert_only_for_python_3_9(&bytecode);
    assert_no_build_paths(&upper, &sandbox);
    assert_runs_in_bullseye(&upper, &["first", "second"]);

    // The runtime image is named, with its digest, in each pack's pin.
    let pin: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(opt.join("packs/first/.st2pack.json")).unwrap())
            .unwrap();
    let recorded = &pin["virtualenv"]["runtime"];
    assert_eq!(recorded["kind"], "image");
    assert_eq!(recorded["image"], runtime.as_str());
    assert!(
        recorded["image_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(recorded["interpreter"], "/usr/bin/python3.9");

    // Built again from the cached image for another runtime: a new virtualenv, not the cached one.
    let layout = sandbox.path().join("layout");
    let mut args = vec![first.to_str().unwrap()];
    args.extend(DESCRIBED);
    args.extend([
        "--target-interpreter",
        "/usr/local/bin/python3.9",
        "--base",
        "scratch",
        "--tag",
        "p:1",
        "--json",
    ]);
    let output = format!("oci:{}", layout.display());
    args.extend(["--output", &output]);
    let rebuilt = build(&sandbox, &args, &[]);
    rebuilt.assert_ok();
    let venv = sandbox
        .cache()
        .join("build-roots-v1/default/virtualenvs/first");
    assert_eq!(
        fs::read_link(venv.join("bin/python")).unwrap(),
        Path::new("/usr/local/bin/python3.9")
    );
}

#[test]
fn a_runtime_image_without_python_is_refused_and_nothing_is_written() {
    let sandbox = Sandbox::new();
    fill_wheelhouse(&sandbox);
    let pack = write_pack(&sandbox.path().join("src"), "first", "greeter\n");
    // An image of a static busybox alone.
    let rootfs = sandbox.path().join("busybox-root");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    let images = sandbox.path().join("images");
    let reference = common::runtime_image::umoci_layout(
        &images,
        "busybox",
        &[("insert", rootfs.as_path(), "/")],
    );
    let layout = sandbox.path().join("layout");
    let output = format!("oci:{}", layout.display());
    let run = build(
        &sandbox,
        &[
            pack.to_str().unwrap(),
            "--runtime-image",
            &reference,
            "--base",
            "scratch",
            "--tag",
            "p:1",
            "--output",
            &output,
        ],
        &[],
    );
    run.assert_code(2);
    run.assert_stderr_has(&format!("--runtime-image {reference}"));
    run.assert_stderr_has("no Python interpreter");
    assert!(!layout.exists());
    assert!(
        !sandbox
            .cache()
            .join("build-roots-v1/default/packs/first")
            .exists()
    );
}

#[test]
fn st2_pack_install_builds_for_a_described_runtime_and_keeps_upstreams_seeding() {
    let sandbox = Sandbox::new();
    fill_wheelhouse(&sandbox);
    let pack = write_pack(&sandbox.path().join("src"), "first", "greeter\nfastmod\n");
    let python = bullseye_python(&sandbox);
    let mut args = vec![pack.to_str().unwrap()];
    args.extend(DESCRIBED);
    args.extend(["--bytecode-python", python.to_str().unwrap()]);
    let run = sandbox.install(&args);
    run.assert_ok();
    let venv = sandbox.venvs().join("first");
    assert_eq!(
        fs::read_link(venv.join("bin/python")).unwrap(),
        Path::new("/usr/bin/python3.9")
    );
    // pip stays, as upstream seeds it; the wheelhouse has no `wheel`, which is said.
    assert!(venv.join("lib/python3.9/site-packages/pip").is_dir());
    run.assert_stderr_has("`wheel`");
    let pin: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(sandbox.packs().join("first/.st2pack.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        pin["virtualenv"]["runtime"]["platform"],
        "x86_64-manylinux_2_31"
    );

    // Installed where bullseye sees them at the sandbox's paths: the virtualenv runs there.
    let upper = sandbox.path().join("upper");
    let inside = upper.join(sandbox.path().strip_prefix("/").unwrap());
    fs::create_dir_all(&inside).unwrap();
    for dir in ["packs", "virtualenvs"] {
        let status = Command::new("cp")
            .arg("-a")
            .arg(sandbox.path().join(dir))
            .arg(&inside)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let script = format!(
        "cd {packs}/first/actions && {venvs}/first/bin/python -c 'import act, fastmod; print(act.run(), fastmod.answer())'",
        packs = sandbox.packs().display(),
        venvs = sandbox.venvs().display()
    );
    let output = common::bullseye::run(&upper, &script);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("ran 42"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_relative_uv_cache_dir_is_where_st2pack_was_started_not_in_the_virtualenv() {
    let sandbox = Sandbox::new();
    fill_wheelhouse(&sandbox);
    let pack = write_pack(&sandbox.path().join("src"), "first", "greeter\n");
    for runtime in [vec!["--runtime", "host"], DESCRIBED.to_vec()] {
        let mut command = sandbox.install_command(&[("UV_CACHE_DIR", "uv-cache")]);
        command
            .current_dir(sandbox.path())
            .arg("--wheelhouse")
            .arg(sandbox.wheelhouse())
            .arg("--installer")
            .arg("uv")
            .arg(&pack)
            .args(&runtime)
            .arg("--force");
        let run = Run::from(command.output().unwrap());
        run.assert_ok();
        assert!(sandbox.path().join("uv-cache").is_dir(), "{runtime:?}");
        assert!(
            !sandbox.venvs().join("first/uv-cache").exists(),
            "{runtime:?}: uv's cache in the virtualenv"
        );
    }
}
