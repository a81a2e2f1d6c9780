//! `st2pack validate`, driven through the real binary against the fixture packs and against
//! temporary copies given what cannot be committed (FIFOs, sockets, escaping symlinks).

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::repos::{copy_fixture, fixture_pack};
use common::run::{Run, Sandbox};
use serde_json::Value;

/// `st2pack validate ARGS...` in a clean environment, from `cwd` (default: the sandbox).
fn validate_in(sandbox: &Sandbox, cwd: Option<&Path>, args: &[&OsStr]) -> Run {
    let mut command = sandbox.command(env!("CARGO_BIN_EXE_st2pack"), &[]);
    command
        .current_dir(cwd.unwrap_or(sandbox.path()))
        .arg("validate")
        .args(args);
    Run::from(command.output().expect("st2pack runs"))
}

fn validate(args: &[&OsStr]) -> Run {
    validate_in(&Sandbox::new(), None, args)
}

/// `--json` output for the given pack directories.
fn validate_json(dirs: &[&Path]) -> (Run, Value) {
    let mut args: Vec<&OsStr> = vec![OsStr::new("--json")];
    args.extend(dirs.iter().map(|d| d.as_os_str()));
    let run = validate(&args);
    let json = run.json();
    (run, json)
}

/// One error or warning, with `file` relative to the pack directory it was reported for.
#[derive(Debug)]
struct Found {
    file: String,
    line: Option<u64>,
    message: String,
}

fn problems(pack: &Value, kind: &str) -> Vec<Found> {
    let root = pack["path"].as_str().expect("path");
    pack[kind]
        .as_array()
        .expect("problem list")
        .iter()
        .map(|p| {
            let file = p["file"].as_str().expect("file");
            Found {
                file: file
                    .strip_prefix(root)
                    .map_or(file, |f| f.trim_start_matches('/'))
                    .to_string(),
                line: p["line"].as_u64(),
                message: p["message"].as_str().expect("message").to_string(),
            }
        })
        .collect()
}

/// Validates one fixture pack, expecting it to fail, and returns its errors.
fn fixture_errors(name: &str) -> Vec<Found> {
    let (run, json) = validate_json(&[&fixture_pack(name)]);
    run.assert_code(1);
    problems(&json["packs"][0], "errors")
}

fn assert_has(found: &[Found], file: &str, line: Option<u64>, needle: &str) {
    assert!(
        found
            .iter()
            .any(|f| f.file == file && f.line == line && f.message.contains(needle)),
        "no error in {file} at {line:?} containing {needle:?}: {found:#?}"
    );
}

#[test]
fn good_fixture_packs_pass() {
    for name in ["hello_st2", "with_reqs", "hello_deps"] {
        let pack = fixture_pack(name);
        let run = validate(&[pack.as_os_str()]);
        run.assert_code(0);
        assert!(
            run.stdout.starts_with(&format!("{}: ok", pack.display())),
            "{}",
            run.stdout
        );
        assert!(!run.stdout.contains("error:"), "{}", run.stdout);
    }
}

#[test]
fn warnings_alone_do_not_fail() {
    // with_reqs ships no README.md.
    let (run, json) = validate_json(&[&fixture_pack("with_reqs")]);
    run.assert_code(0);
    let warnings = problems(&json["packs"][0], "warnings");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0].file, "README.md");
    assert!(
        json["packs"][0]["errors"]
            .as_array()
            .expect("errors")
            .is_empty()
    );
}

#[test]
fn broken_pack_yaml_names_its_line() {
    let pack = fixture_pack("broken_yaml");
    let run = validate(&[pack.as_os_str()]);
    run.assert_code(1);
    let expected = format!("error: {}:4: ", pack.join("pack.yaml").display());
    assert!(run.stdout.contains(&expected), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!("{}: FAILED", pack.display())),
        "{}",
        run.stdout
    );
    assert_has(
        &fixture_errors("broken_yaml"),
        "pack.yaml",
        Some(4),
        "mapping values",
    );
}

#[test]
fn pack_yaml_rules_are_the_installers() {
    assert_has(
        &fixture_errors("bad_name"),
        "pack.yaml",
        None,
        "ref \"../escape\" is not a valid pack name",
    );
    assert_has(
        &fixture_errors("no_pack_yaml"),
        "pack.yaml",
        None,
        "has no pack.yaml",
    );
    assert_has(
        &fixture_errors("py2_only"),
        "pack.yaml",
        None,
        "supports only Python 2",
    );
}

#[test]
fn a_missing_entry_point_is_named() {
    let errors = fixture_errors("invalid_entry_point");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_has(
        &errors,
        "actions/run.yaml",
        Some(6),
        "actions/run.py does not exist",
    );
}

#[test]
fn an_action_yaml_syntax_error_names_its_line() {
    let pack = fixture_pack("invalid_action_yaml");
    let run = validate(&[pack.as_os_str()]);
    run.assert_code(1);
    let expected = format!(
        "error: {}:5: invalid YAML",
        pack.join("actions/broken.yaml").display()
    );
    assert!(run.stdout.contains(&expected), "{}", run.stdout);
    let errors = fixture_errors("invalid_action_yaml");
    assert_eq!(errors.len(), 1, "{errors:#?}");
}

#[test]
fn a_sensor_without_class_name_or_entry_point_file_fails() {
    let errors = fixture_errors("invalid_sensor");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_has(
        &errors,
        "sensors/watcher.yaml",
        None,
        "\"class_name\" is missing",
    );
    assert_has(
        &errors,
        "sensors/watcher.yaml",
        Some(3),
        "sensors/watcher.py does not exist",
    );
}

#[test]
fn a_garbage_requirements_line_is_named_by_number() {
    let errors = fixture_errors("invalid_requirements");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_has(
        &errors,
        "requirements.txt",
        Some(6),
        "\"please install the client library by hand\" is not a requirement",
    );
    // A pack may not choose the index: the installer refuses it, and so does validate.
    assert_has(
        &errors,
        "requirements.txt",
        Some(4),
        "--index-url https://pypi.org/simple: a pack may not choose",
    );
}

#[test]
fn requirements_that_reach_outside_the_pack_are_errors_unless_allowed() {
    let sandbox = Sandbox::new();
    let pack = scratch_pack(&sandbox);
    fs::write(sandbox.path().join("host.txt"), "six\n").unwrap();
    fs::create_dir(pack.join("reqs")).unwrap();
    symlink(
        sandbox.path().join("host.txt"),
        pack.join("reqs/linked.txt"),
    )
    .unwrap();
    fs::write(
        pack.join("requirements.txt"),
        "six\n-r ../host.txt\n--extra-index-url http://127.0.0.1:9/simple/\n-r reqs/ok.txt\n",
    )
    .unwrap();
    fs::write(
        pack.join("reqs/ok.txt"),
        "-r linked.txt\n--trusted-host example.invalid\n",
    )
    .unwrap();
    let (run, json) = validate_json(&[&pack]);
    run.assert_code(1);
    let errors = problems(&json["packs"][0], "errors");
    assert_has(
        &errors,
        "requirements.txt",
        Some(2),
        "-r ../host.txt: '..' leaves",
    );
    assert_has(&errors, "requirements.txt", Some(3), "--extra-index-url");
    assert_has(&errors, "reqs/ok.txt", Some(1), "it is a symlink to");
    assert_has(
        &errors,
        "reqs/ok.txt",
        Some(2),
        "--trusted-host example.invalid",
    );

    let allow = [
        OsStr::new("--json"),
        OsStr::new("--allow-pack-index-options"),
        pack.as_os_str(),
    ];
    let run = validate_in(&sandbox, None, &allow);
    let errors = problems(&run.json()["packs"][0], "errors");
    let lines: Vec<(&str, Option<u64>)> =
        errors.iter().map(|e| (e.file.as_str(), e.line)).collect();
    // The host files stay errors; the index and trust options are the user's call.
    assert!(
        lines.iter().all(|l| *l == ("requirements.txt", Some(2))
            || *l == ("reqs/ok.txt", Some(1))
            || l.0 == "reqs/linked.txt"),
        "{errors:#?}"
    );
    assert!(
        lines.contains(&("requirements.txt", Some(2))),
        "{errors:#?}"
    );
}

#[test]
fn a_config_schema_option_without_a_schema_fails() {
    let errors = fixture_errors("invalid_config_schema");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_has(&errors, "config.schema.yaml", Some(7), "option \"region\"");
}

/// A copy of `hello_st2` to add what cannot be committed.
fn scratch_pack(sandbox: &Sandbox) -> PathBuf {
    let pack = sandbox.path().join("hello_st2");
    copy_fixture("hello_st2", &pack);
    pack
}

#[test]
fn special_files_and_escaping_symlinks_are_named() {
    let sandbox = Sandbox::new();
    let pack = scratch_pack(&sandbox);
    let status = Command::new("mkfifo")
        .arg(pack.join("actions/pipe"))
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    let _socket = UnixListener::bind(pack.join("control.sock")).expect("socket");
    symlink("../../etc/passwd", pack.join("actions/passwd")).expect("symlink");
    symlink("/etc/hostname", pack.join("hostname")).expect("symlink");
    symlink("../README.md", pack.join("actions/README.md")).expect("symlink");

    let run = validate_in(&sandbox, None, &[OsStr::new("--json"), pack.as_os_str()]);
    run.assert_code(1);
    let errors = problems(&run.json()["packs"][0], "errors");
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert_has(&errors, "actions/pipe", None, "is a FIFO");
    assert_has(&errors, "control.sock", None, "is a socket");
    assert_has(
        &errors,
        "actions/passwd",
        None,
        "leaves the pack (-> ../../etc/passwd)",
    );
    assert_has(
        &errors,
        "hostname",
        None,
        "absolute symlink (-> /etc/hostname)",
    );

    let human = validate_in(&sandbox, None, &[pack.as_os_str()]);
    human.assert_code(1);
    let line = format!("error: {}: is a FIFO", pack.join("actions/pipe").display());
    assert!(human.stdout.contains(&line), "{}", human.stdout);
}

#[test]
fn bytecode_is_a_warning_and_git_is_ignored() {
    let sandbox = Sandbox::new();
    let pack = scratch_pack(&sandbox);
    fs::create_dir_all(pack.join("actions/__pycache__")).expect("mkdir");
    fs::write(pack.join("actions/__pycache__/greet.cpython-311.pyc"), "").expect("write");
    fs::create_dir_all(pack.join(".git/refs")).expect("mkdir");
    symlink("/etc/passwd", pack.join(".git/refs/odd")).expect("symlink");

    let run = validate_in(&sandbox, None, &[OsStr::new("--json"), pack.as_os_str()]);
    run.assert_code(0);
    let json = run.json();
    let warnings = problems(&json["packs"][0], "warnings");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0].file, "actions/__pycache__");
    assert!(warnings[0].message.contains("bytecode"), "{warnings:#?}");
}

#[test]
fn json_output_has_the_documented_shape() {
    let (run, json) = validate_json(&[&fixture_pack("invalid_sensor")]);
    run.assert_code(1);
    let top: Vec<&String> = json.as_object().expect("object").keys().collect();
    assert_eq!(top, ["packs"]);
    let pack = &json["packs"][0];
    let mut keys: Vec<&String> = pack.as_object().expect("pack").keys().collect();
    keys.sort();
    assert_eq!(keys, ["errors", "name", "path", "warnings"]);
    assert_eq!(pack["name"], "invalid_sensor");
    assert_eq!(
        pack["path"],
        fixture_pack("invalid_sensor").display().to_string()
    );
    for error in pack["errors"].as_array().expect("errors") {
        let mut keys: Vec<&String> = error.as_object().expect("error").keys().collect();
        keys.sort();
        assert_eq!(keys, ["file", "line", "message"]);
    }
    // A line that is not known is null, not left out.
    assert!(pack["errors"][0]["line"].is_null(), "{pack:#}");
    assert_eq!(pack["errors"][1]["line"], 3);
    // A pack.yaml without a valid name gives no name.
    let (_, json) = validate_json(&[&fixture_pack("bad_name")]);
    assert!(json["packs"][0]["name"].is_null(), "{json:#}");
}

#[test]
fn every_pack_is_reported_and_one_failure_fails_the_run() {
    let dirs = [
        "hello_st2",
        "invalid_entry_point",
        "with_reqs",
        "broken_yaml",
    ];
    let paths: Vec<PathBuf> = dirs.iter().map(|d| fixture_pack(d)).collect();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let (run, json) = validate_json(&refs);
    run.assert_code(1);
    let packs = json["packs"].as_array().expect("packs");
    let reported: Vec<&str> = packs
        .iter()
        .map(|p| p["path"].as_str().unwrap_or(""))
        .collect();
    let expected: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(reported, expected);
    let failed: Vec<bool> = packs
        .iter()
        .map(|p| !p["errors"].as_array().expect("errors").is_empty())
        .collect();
    assert_eq!(failed, [false, true, false, true]);

    let args: Vec<&OsStr> = paths.iter().map(|p| p.as_os_str()).collect();
    let human = validate(&args);
    human.assert_code(1);
    for (path, status) in paths.iter().zip(["ok", "FAILED", "ok", "FAILED"]) {
        let heading = format!("{}: {status}", path.display());
        assert!(human.stdout.contains(&heading), "{}", human.stdout);
    }
    assert!(
        human.stdout.contains("2 of 4 packs failed"),
        "{}",
        human.stdout
    );
}

#[test]
fn the_current_directory_is_the_default() {
    let sandbox = Sandbox::new();
    let run = validate_in(
        &sandbox,
        Some(&fixture_pack("hello_st2")),
        &[OsStr::new("--json")],
    );
    run.assert_code(0);
    let json = run.json();
    assert_eq!(json["packs"][0]["path"], ".");
    assert_eq!(json["packs"][0]["name"], "hello_st2");
}

#[test]
fn a_directory_that_is_not_there_is_bad_usage() {
    let sandbox = Sandbox::new();
    let missing = sandbox.path().join("no-such-pack");
    let good = fixture_pack("hello_st2");
    let run = validate_in(&sandbox, None, &[good.as_os_str(), missing.as_os_str()]);
    run.assert_code(2)
        .assert_stderr_has(&format!("{} does not exist", missing.display()));
    assert!(
        run.stdout.is_empty(),
        "nothing is validated: {}",
        run.stdout
    );

    let file = good.join("pack.yaml");
    validate_in(&sandbox, None, &[file.as_os_str()])
        .assert_code(2)
        .assert_stderr_has("is not a directory");
}
