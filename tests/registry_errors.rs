//! Registry failures as the user sees them: `st2pack` against servers on 127.0.0.1 that hang
//! (accept and never answer, or stall an upload) or fail (HTTP 500), with a small
//! `--registry-timeout`. Each message must say what happened and name a way out that exists.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::registry::{Fault, FaultProxy, TestRegistry};
use common::run::{Run, Sandbox};
use common::servers::AcceptLoop;

/// How long any run may take before the test gives up on it (a bound, not an assertion on time:
/// every run here is expected to end by itself after a few seconds).
const BOUND: Duration = Duration::from_secs(120);

/// Runs `st2pack args` in the sandbox, killing it (and failing the test) if it outlives [`BOUND`].
fn st2pack(sandbox: &Sandbox, args: &[&str]) -> Run {
    let mut command: Command = sandbox.command(env!("CARGO_BIN_EXE_st2pack"), &[]);
    command
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > BOUND {
            let _ = child.kill();
            let run = Run::from(child.wait_with_output().unwrap());
            panic!(
                "st2pack {args:?} did not finish within {BOUND:?}\n--- stderr\n{}",
                run.stderr
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Run::from(child.wait_with_output().unwrap())
}

/// Accepts connections and never answers, until the client closes them.
fn silent_server() -> AcceptLoop {
    AcceptLoop::start(|mut stream: TcpStream| {
        let _ = stream.set_read_timeout(Some(BOUND));
        let mut buf = [0u8; 4096];
        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    })
}

/// Answers every request (and any TLS hello) with `500 Internal Server Error`.
fn failing_server() -> AcceptLoop {
    AcceptLoop::start(|mut stream: TcpStream| {
        let mut buf = [0u8; 4096];
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = stream.read(&mut buf);
        let _ = stream.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\
              Content-Length: 14\r\nConnection: close\r\n\r\ndatabase down\n",
        );
        let _ = stream.shutdown(Shutdown::Both);
    })
}

#[test]
fn a_hung_tls_handshake_fails_after_the_registry_timeout_and_says_so() {
    let sandbox = Sandbox::new();
    let server = silent_server();
    let image = format!("127.0.0.1:{}/x:1", server.port);
    let run = st2pack(&sandbox, &["inspect", &image, "--registry-timeout", "1"]);
    run.assert_code(1)
        .assert_stderr_has(&format!("127.0.0.1:{}", server.port))
        .assert_stderr_has("TLS handshake")
        .assert_stderr_has("within 1s")
        .assert_stderr_has("--registry-timeout");
    assert!(!run.stderr.contains("60s"), "{}", run.stderr);
}

#[test]
fn a_hung_upload_fails_after_the_registry_timeout_and_names_the_flag() {
    let sandbox = Sandbox::new();
    let registry = TestRegistry::start_plain();
    let proxy = FaultProxy::start(registry.port(), Fault::Stall, usize::MAX);
    let cache = sandbox.cache();
    let target = format!("{}/stalled:1", proxy.host());
    let run = st2pack(
        &sandbox,
        &[
            "base-image",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--tag",
            &target,
            "--push",
            "--registry-timeout",
            "1",
        ],
    );
    run.assert_code(1)
        .assert_stderr_has("uploading blob")
        .assert_stderr_has("did not answer within 1s")
        .assert_stderr_has("--registry-timeout")
        .assert_stderr_has("gave up after");
    assert!(proxy.faults() >= 1);
    // Retries stop once the time they may take is spent, well before the policy's 5 attempts.
    assert!(!run.stderr.contains("after 5 attempts"), "{}", run.stderr);
    assert!(!run.stderr.contains("raise the timeout"), "{}", run.stderr);
}

#[test]
fn a_500_from_the_registry_api_over_plain_http_is_reported_as_a_500() {
    let sandbox = Sandbox::new();
    let server = failing_server();
    let image = format!("127.0.0.1:{}/x:1", server.port);
    let run = st2pack(
        &sandbox,
        &["inspect", &image, "--insecure", "--registry-timeout", "5"],
    );
    run.assert_code(1)
        .assert_stderr_has("HTTP 500")
        .assert_stderr_has("database down")
        .assert_stderr_has(&format!("http://127.0.0.1:{}/v2/", server.port));
    assert!(!run.stderr.contains("pass --insecure"), "{}", run.stderr);
}
