//! Resolving a virtualenv's requirements to exact versions and hashes, with uv's own resolver:
//! `uv pip compile --generate-hashes`, for the runtime's Python version and platform, from the
//! same index or wheelhouse the install uses, so the build finds every locked file again.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::format::LockedRequirement;
use crate::install::venv::{self, VenvRuntime, VenvSpec};
use crate::redact::{redact_url, redact_urls_in};

#[derive(Debug, Error)]
pub enum CompileError {
    #[error(
        "locking Python requirements needs uv, which is not on PATH\n  install uv \
         (https://docs.astral.sh/uv/) and run st2pack lock again"
    )]
    NoUv,
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "uv pip compile could not lock the requirements of pack {pack} ({status}):\n{output}\n  \
         check the pack's requirements.txt and the index or wheelhouse, then lock again"
    )]
    Failed {
        pack: String,
        status: String,
        output: String,
    },
    #[error("uv pip compile wrote a line st2pack cannot read: {line}")]
    Unreadable { line: String },
}

/// Locks `extra` (seeds and base requirement lines) and the pack requirements of `spec` for
/// its runtime. An empty list when there is nothing to install.
pub async fn compile(
    pack: &str,
    spec: &VenvSpec,
    extra: &[String],
) -> Result<Vec<LockedRequirement>, CompileError> {
    if extra.is_empty() && spec.requirements.is_none() {
        return Ok(Vec::new());
    }
    let uv = venv::find_uv().ok_or(CompileError::NoUv)?;
    let dir = tempfile::tempdir().map_err(|source| CompileError::Io {
        action: "create a temporary directory in",
        path: std::env::temp_dir(),
        source,
    })?;
    let input = dir.path().join("requirements.in");
    let mut text: String = extra.iter().map(|line| format!("{line}\n")).collect();
    if let Some(requirements) = &spec.requirements {
        let absolute = std::path::absolute(requirements).unwrap_or_else(|_| requirements.clone());
        text.push_str(&format!("-r {}\n", absolute.display()));
    }
    std::fs::write(&input, text).map_err(|source| CompileError::Io {
        action: "write",
        path: input.clone(),
        source,
    })?;

    let mut command = venv::sanitized_command(&uv, dir.path());
    command.args([
        "pip",
        "compile",
        "--generate-hashes",
        "--no-header",
        "--no-annotate",
        "--quiet",
    ]);
    match &spec.runtime {
        VenvRuntime::Native => {
            command.arg("--python").arg(&spec.python.path);
        }
        VenvRuntime::Target(build) => {
            command
                .arg("--python-version")
                .arg(build.target.python.to_string())
                .arg("--python-platform")
                .arg(build.target.platform.uv_triple());
            if let Some(python) = &build.uv_python {
                command.arg("--python").arg(python);
            }
        }
    }
    if let Some(wheelhouse) = &spec.wheelhouse {
        command
            .arg("--no-index")
            .arg("--find-links")
            .arg(wheelhouse);
    }
    if spec.only_binary {
        command.args(["--only-binary", ":all:"]);
    }
    command.arg(&input);
    let output = command.output().await.map_err(|source| CompileError::Io {
        action: "run",
        path: uv.clone(),
        source,
    })?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(20)..].join("\n");
        return Err(CompileError::Failed {
            pack: pack.to_string(),
            status: output.status.to_string(),
            output: redact_urls_in(&hide(&tail, dir.path())),
        });
    }
    parse(&String::from_utf8_lossy(&output.stdout))
}

/// Messages name the temporary input as what it stands for.
fn hide(text: &str, dir: &Path) -> String {
    text.replace(
        &dir.join("requirements.in").display().to_string(),
        "(the requirements)",
    )
}

/// Reads uv's requirements output: one entry per requirement, continued with `\`, each with
/// its `--hash` options; comments and blank lines skipped.
pub fn parse(text: &str) -> Result<Vec<LockedRequirement>, CompileError> {
    let mut entries = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.split(" #").next().unwrap_or_default();
        if line.trim_start().starts_with('#') {
            continue;
        }
        match line.trim_end().strip_suffix('\\') {
            Some(continued) => {
                current.push_str(continued);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                if !current.trim().is_empty() {
                    entries.push(entry(current.trim())?);
                }
                current.clear();
            }
        }
    }
    if !current.trim().is_empty() {
        entries.push(entry(current.trim())?);
    }
    Ok(entries)
}

fn entry(line: &str) -> Result<LockedRequirement, CompileError> {
    let unreadable = || CompileError::Unreadable {
        line: redact_urls_in(line),
    };
    let mut hashes = Vec::new();
    let mut words = Vec::new();
    for word in line.split_whitespace() {
        match word.strip_prefix("--hash=") {
            Some(hash) => hashes.push(hash.to_string()),
            None if word.starts_with("--") => return Err(unreadable()),
            None => words.push(word),
        }
    }
    let requirement = words.join(" ");
    let (requirement, marker) = match requirement.split_once(';') {
        Some((requirement, marker)) => (
            requirement.trim().to_string(),
            Some(marker.trim().to_string()),
        ),
        None => (requirement, None),
    };
    let (name, version, url) = if let Some((name, url)) = requirement.split_once(" @ ") {
        (name.trim(), None, Some(redact_url(url.trim())))
    } else if let Some((name, version)) = requirement.split_once("==") {
        (name.trim(), Some(version.trim().to_string()), None)
    } else {
        return Err(unreadable());
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(unreadable());
    }
    Ok(LockedRequirement {
        name: name.to_string(),
        version,
        url,
        marker,
        hashes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_uvs_output() {
        let text = "pip==23.2.1 \\\n    --hash=sha256:aa\nsetuptools==65.5.0 \\\n    \
                    --hash=sha256:bb \\\n    --hash=sha256:cc\n    # via -r x.in\n\n\
                    demo @ https://user:secret@example.com/demo-1.0.tar.gz \\\n    --hash=sha256:dd\n";
        let entries = parse(text).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].name, "pip");
        assert_eq!(entries[0].version.as_deref(), Some("23.2.1"));
        assert_eq!(entries[1].hashes, ["sha256:bb", "sha256:cc"]);
        assert_eq!(
            entries[2].url.as_deref(),
            Some("https://***@example.com/demo-1.0.tar.gz")
        );
        assert!(parse("six>=1.0\n").is_err());
    }
}
