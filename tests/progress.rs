//! What a run shows while it works. On a terminal (a real pseudo-terminal here): one line per
//! pack in flight with its current step, a done/total count, and bytes and rate for uploads,
//! all gone when the run ends. Anywhere else (a CI log): only the end summary, no escape
//! sequences.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::pty::{drawn_lines, run_on_terminal};
use common::registry::TestRegistry;
use common::repos::copy_fixture;
use common::run::{Run, Sandbox};

const INSTALL_STEPS: [&str; 5] = [
    "fetching",
    "resolving",
    "building virtualenv",
    "compiling bytecode",
    "placing",
];

/// Copies of the `with_reqs` and `hello_st2` fixture packs, as local directories.
fn two_packs(sandbox: &Sandbox) -> [PathBuf; 2] {
    let src = sandbox.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    ["with_reqs", "hello_st2"].map(|name| {
        copy_fixture(name, &src.join(name));
        src.join(name)
    })
}

fn install_command(sandbox: &Sandbox, packs: &[PathBuf], args: &[&str]) -> Command {
    let mut command = sandbox.install_command(&[("TERM", "xterm-256color")]);
    command
        .arg("--wheelhouse")
        .arg(sandbox.wheelhouse())
        .args(args)
        .args(packs);
    command
}

/// `st2pack build` of `packs` on scratch, pushed to `registry`.
fn build_command(sandbox: &Sandbox, registry: &TestRegistry, packs: &[PathBuf]) -> Command {
    let mut command = sandbox.command(env!("CARGO_BIN_EXE_st2pack"), &[("TERM", "xterm-256color")]);
    command
        .arg("build")
        .arg("--cache-dir")
        .arg(sandbox.cache())
        .arg("--wheelhouse")
        .arg(sandbox.wheelhouse())
        .args([
            "--python",
            "/usr/bin/python3",
            "--runtime",
            "host",
            "--base",
            "scratch",
            "--push",
        ])
        .arg("--tag")
        .arg(format!("{}/st2/packs:1", registry.host()))
        .args(packs);
    command
}

fn has_line(lines: &[String], matches: impl Fn(&str) -> bool) -> bool {
    lines.iter().any(|line| matches(line))
}

/// A line that starts with `pack` and names one of `steps`.
fn pack_line_with_step(lines: &[String], pack: &str, steps: &[&str]) -> bool {
    has_line(lines, |line| {
        line.trim_start().starts_with(pack) && steps.iter().any(|step| line.contains(step))
    })
}

fn assert_drawn(run: &Run, lines: &[String], what: &str, found: bool) {
    assert!(
        found,
        "the terminal never showed {what}\n--- drawn lines\n{}\n--- raw stream\n{:?}",
        lines.join("\n"),
        run.stderr
    );
}

/// The summary line `last` ends the stream: the progress lines were cleared before the summary
/// and nothing was drawn after it.
fn summary_is_last(run: &Run, last: &str) {
    // The terminal turns each \n into \r\n.
    let stream = run.stderr.replace("\r\n", "\n");
    assert!(
        stream.ends_with(&format!("\n{last}\n")),
        "the run did not end with its summary {last:?}\n--- drawn lines\n{}",
        drawn_lines(&run.stderr).join("\n")
    );
}

fn install_summary(sandbox: &Sandbox) -> String {
    format!(
        "2 installed, 0 unchanged, 0 failed (packs in {}, virtualenvs in {})",
        sandbox.packs().display(),
        sandbox.venvs().display()
    )
}

#[test]
fn an_install_on_a_terminal_shows_each_pack_with_its_step_and_a_count() {
    let sandbox = Sandbox::new();
    let packs = two_packs(&sandbox);
    let run = run_on_terminal(install_command(&sandbox, &packs, &[]));
    run.assert_ok();
    let lines = drawn_lines(&run.stderr);

    for pack in ["with_reqs", "hello_st2"] {
        assert_drawn(
            &run,
            &lines,
            &format!("a line of {pack} with its step"),
            pack_line_with_step(&lines, pack, &INSTALL_STEPS),
        );
    }
    assert_drawn(
        &run,
        &lines,
        "a done/total count k/2",
        has_line(&lines, |line| {
            ["0/2", "1/2", "2/2"]
                .iter()
                .any(|count| line.contains(count))
        }),
    );
    // The summary is what stays on the screen: the progress lines were cleared before it.
    assert!(has_line(&lines, |line| line
        .starts_with("installed  with_reqs 0.3.0")));
    summary_is_last(&run, &install_summary(&sandbox));
}

#[test]
fn verbose_step_lines_print_whole_above_the_progress_lines() {
    let sandbox = Sandbox::new();
    let packs = two_packs(&sandbox);
    let run = run_on_terminal(install_command(&sandbox, &packs, &["--verbose"]));
    run.assert_ok();
    let lines = drawn_lines(&run.stderr);
    for line in [
        "with_reqs: building virtualenv",
        "hello_st2: building virtualenv",
        "with_reqs: compiling bytecode",
    ] {
        assert_drawn(
            &run,
            &lines,
            &format!("the step line {line:?} on a line of its own"),
            lines.iter().any(|l| l == line),
        );
    }
    summary_is_last(&run, &install_summary(&sandbox));
}

#[test]
fn a_build_on_a_terminal_shows_layering_and_the_bytes_and_rate_of_each_upload() {
    let sandbox = Sandbox::new();
    let registry = TestRegistry::start_plain();
    let packs = two_packs(&sandbox);
    let run = run_on_terminal(build_command(&sandbox, &registry, &packs));
    run.assert_ok();
    assert!(run.stdout.trim().starts_with("sha256:"), "{}", run.stdout);
    let lines = drawn_lines(&run.stderr);

    for pack in ["with_reqs", "hello_st2"] {
        assert_drawn(
            &run,
            &lines,
            &format!("{pack} being layered"),
            pack_line_with_step(&lines, pack, &["layering"]),
        );
        // `with_reqs  pushing [====>   ] 12.00 KiB/40.00 KiB 1.2 MiB/s`
        assert_drawn(
            &run,
            &lines,
            &format!("{pack}'s layer being pushed, with bytes sent and rate"),
            has_line(&lines, |line| {
                line.trim_start().starts_with(pack)
                    && line.contains("pushing")
                    && line.contains("B/")
                    && line.ends_with("B/s")
            }),
        );
    }
    assert_drawn(
        &run,
        &lines,
        "a count of blobs pushed",
        has_line(&lines, |line| line.contains("/5 blobs pushed")),
    );
    assert!(has_line(&lines, |line| line.starts_with("pushed ")));
    assert_eq!(registry.upload_count(), 5, "{}", registry.access_log());
}

/// Stderr not a terminal (even with TERM set): the end summary, exactly, and no escapes.
#[test]
fn without_a_terminal_only_the_end_summary_is_written() {
    let sandbox = Sandbox::new();
    let packs = two_packs(&sandbox);
    let run = Run::from(install_command(&sandbox, &packs, &[]).output().unwrap());
    run.assert_ok();
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);
    // Warnings (about the test's wheelhouse) aside, the summary and nothing else.
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| !line.starts_with("warning: "))
        .collect();
    assert_eq!(
        lines,
        [
            "installed  with_reqs 0.3.0",
            "installed  hello_st2 1.1.0",
            &install_summary(&sandbox),
        ],
        "{}",
        run.stderr
    );

    // With --verbose, the steps are plain lines.
    let run = Run::from(
        install_command(&sandbox, &packs, &["--verbose", "--force"])
            .output()
            .unwrap(),
    );
    run.assert_ok();
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);
    assert!(
        run.stderr.contains("\nwith_reqs: building virtualenv\n"),
        "{}",
        run.stderr
    );

    let registry = TestRegistry::start_plain();
    let run = Run::from(build_command(&sandbox, &registry, &packs).output().unwrap());
    run.assert_ok();
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);
    for noise in [
        "packs installed",
        "layers built",
        "blobs pushed",
        "layering",
        "pushing",
        "B/s",
        "\r",
    ] {
        assert!(
            !run.stderr.contains(noise),
            "stderr holds {noise:?}: {}",
            run.stderr
        );
    }
    assert!(run.stderr.contains("\npushed "), "{}", run.stderr);
}
