//! Packs written to attack the build machine: symlinks that lead to its files or directories.
//! Nothing may be read or written through them, whatever the source kind, and nothing of the
//! machine may reach the installed tree, the cache or an image.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::repos::{copy_fixture, git, write_index};
use common::run::{Run, Sandbox};

/// What the build machine's secret file holds: valid Python, so a compiler following the link
/// would gladly turn it into bytecode.
const SECRET: &str = "st2pack-host-secret-8c1f0e";

/// A file of the build machine holding [`SECRET`], outside everything the install touches.
fn host_secret(sandbox: &Sandbox) -> PathBuf {
    let dir = sandbox.path().join("host");
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.json");
    fs::write(&file, format!("KEY = \"{SECRET}\"\n")).unwrap();
    file
}

/// Makes the pack at `dest` a git repository with one commit, tagged as the index expects.
fn committed(dest: &Path) {
    git(dest, &["init", "-q", "-b", "main"]);
    git(dest, &["add", "-A"]);
    git(dest, &["commit", "-q", "-m", "pack"]);
    git(dest, &["tag", "v1.1.0"]);
}

/// Every place under `dir` (links not followed) whose bytes, or whose gzip or zstd content,
/// hold [`SECRET`].
fn files_with_secret(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_file() {
            continue;
        }
        let bytes = fs::read(entry.path()).unwrap();
        let mut content = bytes.clone();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            if flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .is_ok()
            {
                content = out;
            }
        } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
            && let Ok(out) = zstd::decode_all(&bytes[..])
        {
            content = out;
        }
        let needle = SECRET.as_bytes();
        let holds = |haystack: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
        if holds(&bytes) || holds(&content) {
            found.push(entry.path().to_path_buf());
        }
    }
    found
}

fn assert_no_secret(sandbox: &Sandbox, dirs: &[PathBuf]) {
    let mut dirs = dirs.to_vec();
    dirs.extend([
        sandbox.packs(),
        sandbox.venvs(),
        sandbox.cache(),
        sandbox.path().join("xdg-cache"),
    ]);
    for dir in dirs {
        let found = files_with_secret(&dir);
        assert!(
            found.is_empty(),
            "the host's secret was copied to {found:?}"
        );
    }
}

fn assert_refused(run: &Run, link: &str, target: &Path) {
    run.assert_code(1)
        .assert_stderr_has(&format!("{link} -> {}", target.display()))
        .assert_stderr_has("out of the pack");
}

#[test]
fn a_link_to_a_host_file_is_refused_for_every_source_kind() {
    let sandbox = Sandbox::new();
    let secret = host_secret(&sandbox);
    let pack = sandbox.path().join("src/hello_st2");
    fs::create_dir_all(pack.parent().unwrap()).unwrap();
    copy_fixture("hello_st2", &pack);
    symlink(&secret, pack.join("actions/helpers.py")).unwrap();

    // A directory copied as it is.
    let run = sandbox.install(&["--no-base-requirements", pack.to_str().unwrap()]);
    assert_refused(&run, "actions/helpers.py", &secret);
    // A git checkout.
    committed(&pack);
    let url = format!("file://{}", pack.display());
    let run = sandbox.install(&["--no-base-requirements", &url]);
    assert_refused(&run, "actions/helpers.py", &secret);
    // An Exchange name, through the index.
    let index = sandbox.path().join("index.json");
    write_index(&index, &[("hello_st2", &url, "1.1.0")]);
    let index_url = format!("file://{}", index.display());
    let run = sandbox.install(&[
        "--no-base-requirements",
        "--index-url",
        &index_url,
        "--json",
        "hello_st2",
    ]);
    assert_refused(&run, "actions/helpers.py", &secret);
    let error = run.json()["packs"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("actions/helpers.py"), "{error}");

    assert!(!sandbox.packs().join("hello_st2").exists());
    assert_no_secret(&sandbox, &[]);
}

#[test]
fn a_link_chain_out_of_the_pack_is_refused() {
    let sandbox = Sandbox::new();
    let secret = host_secret(&sandbox);
    let pack = sandbox.path().join("src/hello_st2");
    fs::create_dir_all(pack.parent().unwrap()).unwrap();
    copy_fixture("hello_st2", &pack);
    // `up` stays in the pack and `helpers.py` reads as a path inside it, but through `up` it
    // climbs to src/, then to the host's file.
    symlink("..", pack.join("actions/up")).unwrap();
    symlink("up/../../host/config.json", pack.join("actions/helpers.py")).unwrap();
    let run = sandbox.install(&["--no-base-requirements", pack.to_str().unwrap()]);
    assert_refused(
        &run,
        "actions/helpers.py",
        Path::new("up/../../host/config.json"),
    );
    assert!(fs::read_to_string(&secret).unwrap().contains(SECRET));
    assert_no_secret(&sandbox, &[]);
}

#[test]
fn a_build_never_puts_a_host_file_into_an_image() {
    let sandbox = Sandbox::new();
    let secret = host_secret(&sandbox);
    let pack = sandbox.path().join("src/hello_st2");
    fs::create_dir_all(pack.parent().unwrap()).unwrap();
    copy_fixture("hello_st2", &pack);
    symlink(&secret, pack.join("actions/helpers.py")).unwrap();
    let layout = sandbox.path().join("layout");
    let root = sandbox.path().join("root");
    let cache = sandbox.cache();
    let mut command = sandbox.build_command(&cache, &[]);
    command.args([
        pack.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "--base",
        "scratch",
        "--tag",
        "st2packs:1",
        "--output",
        &format!("oci:{}", layout.display()),
    ]);
    let run = Run::from(command.output().unwrap());
    assert_no_secret(&sandbox, &[layout, root]);
    assert_refused(&run, "actions/helpers.py", &secret);
}

#[test]
fn nothing_is_written_through_the_packs_links() {
    let sandbox = Sandbox::new();
    let host_file = sandbox.path().join("host/provenance-target");
    let host_dir = sandbox.path().join("host/pycache");
    fs::create_dir_all(&host_dir).unwrap();
    fs::write(&host_file, "host file\n").unwrap();
    let src = sandbox.path().join("src");
    fs::create_dir_all(src.join("outward")).unwrap();
    fs::create_dir_all(src.join("inward")).unwrap();

    // Links out of the pack: refused, and the host's file and directory are left alone.
    let outward = src.join("outward/hello_st2");
    copy_fixture("hello_st2", &outward);
    fs::create_dir_all(outward.join("sensors")).unwrap();
    fs::write(outward.join("sensors/watch.py"), "WATCHED = True\n").unwrap();
    symlink(&host_file, outward.join(".st2pack.json")).unwrap();
    symlink(&host_dir, outward.join("sensors/__pycache__")).unwrap();
    let run = sandbox.install(&["--no-base-requirements", outward.to_str().unwrap()]);
    assert_refused(&run, ".st2pack.json", &host_file);
    assert_refused(&run, "sensors/__pycache__", &host_dir);

    // Links within the pack: the install succeeds, writes into neither target, and keeps the
    // pack's other links as links.
    let inward = src.join("inward/hello_st2");
    copy_fixture("hello_st2", &inward);
    fs::create_dir_all(inward.join("sensors")).unwrap();
    fs::create_dir_all(inward.join("shared")).unwrap();
    fs::write(inward.join("sensors/watch.py"), "WATCHED = True\n").unwrap();
    fs::write(inward.join("notes.txt"), "pack notes\n").unwrap();
    symlink("notes.txt", inward.join(".st2pack.json")).unwrap();
    symlink("../shared", inward.join("sensors/__pycache__")).unwrap();
    symlink("greet.py", inward.join("actions/greet_again.py")).unwrap();
    symlink("../actions", inward.join("sensors/actions")).unwrap();
    sandbox
        .install(&["--no-base-requirements", inward.to_str().unwrap()])
        .assert_ok();

    assert_eq!(fs::read_to_string(&host_file).unwrap(), "host file\n");
    assert_eq!(fs::read_dir(&host_dir).unwrap().count(), 0);
    let installed = sandbox.packs().join("hello_st2");
    assert_eq!(
        fs::read_to_string(installed.join("notes.txt")).unwrap(),
        "pack notes\n"
    );
    let provenance = fs::symlink_metadata(installed.join(".st2pack.json")).unwrap();
    assert!(provenance.is_file());
    assert_eq!(fs::read_dir(installed.join("shared")).unwrap().count(), 0);
    assert!(
        fs::symlink_metadata(installed.join("sensors/__pycache__"))
            .unwrap()
            .is_dir()
    );
    assert!(
        fs::read_dir(installed.join("sensors/__pycache__"))
            .unwrap()
            .any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("watch."))
    );
    for (link, target) in [
        ("actions/greet_again.py", "greet.py"),
        ("sensors/actions", "../actions"),
    ] {
        assert_eq!(
            fs::read_link(installed.join(link)).unwrap(),
            Path::new(target)
        );
    }
}

#[test]
fn validate_names_links_out_of_the_pack_without_reading_through_them() {
    let sandbox = Sandbox::new();
    let secret = host_secret(&sandbox);
    let pack = sandbox.path().join("src/hello_st2");
    fs::create_dir_all(pack.parent().unwrap()).unwrap();
    copy_fixture("hello_st2", &pack);
    fs::remove_file(pack.join("pack.yaml")).unwrap();
    symlink(&secret, pack.join("pack.yaml")).unwrap();
    symlink(&secret, pack.join("requirements.txt")).unwrap();
    symlink(&secret, pack.join("actions/helpers.yaml")).unwrap();
    for format in [&[][..], &["--json"][..]] {
        let mut command = sandbox.command(env!("CARGO_BIN_EXE_st2pack"), &[]);
        command.arg("validate").args(format).arg(&pack);
        let run = Run::from(command.output().unwrap());
        run.assert_code(1);
        let output = format!("{}{}", run.stdout, run.stderr);
        assert!(!output.contains(SECRET), "{output}");
        for link in ["pack.yaml", "requirements.txt", "actions/helpers.yaml"] {
            assert!(
                output.contains(link) && output.contains("absolute symlink"),
                "{output}"
            );
        }
    }
}
