//! A token in a git URL, in the form git hosts document (`https://TOKEN@host/org/repo.git`),
//! however short: never printed, never recorded, never published in an image.

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;

use common::repos::{bare_clone, pack_repo};
use common::run::{Run, Sandbox};
use common::servers::{GitDaemon, free_port};

/// Short enough that no rule "a long opaque user name is a token" would catch it.
const TOKEN: &str = "tk9Qz";

/// The files under `dir` (links not followed) whose bytes, or gzip content, hold [`TOKEN`].
fn files_with_token(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_file() {
            continue;
        }
        let bytes = fs::read(entry.path()).unwrap();
        let mut content = Vec::new();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let _ = flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_end(&mut content);
        }
        let holds = |haystack: &[u8]| haystack.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes());
        if holds(&bytes) || holds(&content) {
            found.push(entry.path().display().to_string());
        }
    }
    found
}

fn assert_not_shown(run: &Run) {
    assert!(!run.stderr.contains(TOKEN), "stderr:\n{}", run.stderr);
    assert!(!run.stdout.contains(TOKEN), "stdout:\n{}", run.stdout);
}

#[test]
fn a_token_as_the_url_user_is_hidden_in_output_records_and_image_labels() {
    let sandbox = Sandbox::new();
    let served = sandbox.path().join("served");
    fs::create_dir(&served).unwrap();
    let repo = pack_repo(sandbox.path(), "hello_st2", &["1.1.0"]);
    bare_clone(&repo, &served, "hello_st2");
    let daemon = GitDaemon::serve(&served);
    let url = format!("git://{TOKEN}@127.0.0.1:{}/hello_st2.git", daemon.port);
    let shown = format!("git://***@127.0.0.1:{}/hello_st2.git", daemon.port);

    // A URL that fails: the message names the URL, without the token.
    let unreachable = format!("https://{TOKEN}@127.0.0.1:{}/org/pack.git", free_port());
    let run = sandbox.install(&["--no-base-requirements", "--json", &unreachable]);
    run.assert_code(1)
        .assert_stderr_has("https://***@127.0.0.1:");
    assert_not_shown(&run);

    // An install that works: stderr, --json, .st2pack.json.
    let run = sandbox.install(&["--no-base-requirements", "--json", &format!("{url}=v1.1.0")]);
    run.assert_ok();
    assert_not_shown(&run);
    let summary = run.json();
    assert_eq!(summary["packs"][0]["source"], shown.as_str());
    let provenance = fs::read_to_string(sandbox.packs().join("hello_st2/.st2pack.json")).unwrap();
    assert!(provenance.contains(&shown), "{provenance}");

    // A build: the image label and every blob.
    let layout = sandbox.path().join("layout");
    let cache = sandbox.cache();
    let mut command = sandbox.build_command(&cache, &[]);
    command.args([
        "--no-base-requirements",
        &format!("{url}=v1.1.0"),
        "--base",
        "scratch",
        "--tag",
        "st2packs:1",
        "--output",
        &format!("oci:{}", layout.display()),
    ]);
    let run = Run::from(command.output().unwrap());
    run.assert_ok();
    assert_not_shown(&run);
    let label_shown = format!("\\\"source\\\":\\\"{shown}\\\"");
    let configs: Vec<String> = fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .filter(|text| text.contains("org.stackstorm.st2pack.packs"))
        .collect();
    assert!(
        configs.iter().any(|c| c.contains(&label_shown)),
        "no config labels the pack with {shown}: {configs:?}"
    );

    for dir in [
        sandbox.packs(),
        sandbox.venvs(),
        sandbox.cache(),
        sandbox.path().join("xdg-cache"),
        layout,
    ] {
        let found = files_with_token(&dir);
        assert!(found.is_empty(), "the token was written to {found:?}");
    }
}
