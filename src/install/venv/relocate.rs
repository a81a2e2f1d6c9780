//! Making a virtualenv built in a staging directory work at its final path.
//!
//! Installers write the venv's absolute path into scripts' `#!` lines, `activate*`, `pyvenv.cfg`
//! and sometimes `.pth` or metadata files. Every text file (no NUL byte) under the venv gets the
//! staging path replaced by the final one, and a `#!` line that becomes too long for the kernel is
//! turned into the `/bin/sh` trampoline pip and uv use. `.pyc` files are skipped: they are
//! recompiled afterwards with the final path recorded.

use std::collections::HashSet;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::VenvError;
use crate::runtime::scripts::{UV_CACHE_NOTE, is_uv_cache_note};

/// Linux truncates `#!` lines beyond this (distlib's limit, including `#!` and the newline).
const MAX_SHEBANG: usize = 127;

/// Rewrites `from` to `to` in every text file and symlink under `dir`.
///
/// Returns warnings for binary files that still contain `from` (they may not work at `to`).
pub(crate) fn relocate(dir: &Path, from: &Path, to: &Path) -> Result<Vec<String>, VenvError> {
    let mut needles: Vec<Vec<u8>> = vec![from.as_os_str().as_bytes().to_vec()];
    if let Ok(canonical) = std::fs::canonicalize(from) {
        let canonical = canonical.into_os_string().into_vec();
        if !needles.contains(&canonical) {
            needles.push(canonical);
        }
    }
    let replacement = to.as_os_str().as_bytes();
    let bin_dir = dir.join("bin");
    let mut warnings = Vec::new();
    let mut rewritten = HashSet::new();

    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry.map_err(|e| walk_error(dir, e))?;
        let path = entry.path();
        let file_type = entry.file_type();
        if file_type.is_symlink() {
            let target =
                std::fs::read_link(path).map_err(|e| VenvError::io("read link", path, e))?;
            let bytes = target.as_os_str().as_bytes();
            if let Some(new) = replace_all(bytes, &needles, replacement) {
                let new = PathBuf::from(std::ffi::OsString::from_vec(new));
                std::fs::remove_file(path).map_err(|e| VenvError::io("remove link", path, e))?;
                std::os::unix::fs::symlink(&new, path)
                    .map_err(|e| VenvError::io("create link", path, e))?;
            }
            continue;
        }
        if !file_type.is_file() || path.extension().is_some_and(|e| e == "pyc") {
            continue;
        }
        let content = std::fs::read(path).map_err(|e| VenvError::io("read", path, e))?;
        if !needles.iter().any(|n| find(&content, n).is_some()) {
            continue;
        }
        if content.contains(&0) {
            warnings.push(format!(
                "binary file {} contains the build path {} and may not work at {}",
                display_at(path, dir, to),
                from.display(),
                to.display()
            ));
            continue;
        }
        let Some(mut new) = replace_all(&content, &needles, replacement) else {
            continue;
        };
        if path.parent() == Some(bin_dir.as_path()) {
            new = fix_long_shebang(new, to);
        }
        std::fs::write(path, new).map_err(|e| VenvError::io("rewrite", path, e))?;
        rewritten.insert(path.to_path_buf());
    }
    refresh_records(dir, &rewritten)?;
    Ok(warnings)
}

/// Installers record each installed file's sha256 and size in `*.dist-info/RECORD`. Scripts
/// rewritten above are re-hashed there, so the record stays true and does not keep the
/// fingerprint of the staging path (which would make otherwise identical builds differ). uv's
/// [`UV_CACHE_NOTE`] is dropped, with its line, for the same reason.
fn refresh_records(dir: &Path, rewritten: &HashSet<PathBuf>) -> Result<(), VenvError> {
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry.map_err(|e| walk_error(dir, e))?;
        let record = entry.path();
        let in_dist_info = record
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|name| name.as_bytes().ends_with(b".dist-info"));
        if entry.file_name() != "RECORD" || !in_dist_info {
            continue;
        }
        let Some(site_packages) = record.parent().and_then(Path::parent) else {
            continue;
        };
        let text = std::fs::read_to_string(record).map_err(|e| VenvError::io("read", record, e))?;
        let cache_note = record.with_file_name(UV_CACHE_NOTE);
        let mut changed = false;
        if cache_note.exists() {
            std::fs::remove_file(&cache_note)
                .map_err(|e| VenvError::io("remove", &cache_note, e))?;
            changed = true;
        }
        let mut lines = Vec::new();
        for line in text.lines() {
            let mut fields = line.rsplitn(3, ',');
            let (size, hash, file) = (fields.next(), fields.next(), fields.next());
            if file.is_some_and(is_uv_cache_note) {
                changed = true;
                continue;
            }
            let target = file.map(|f| lexical_join(site_packages, f.trim_matches('"')));
            match (target, hash, size) {
                (Some(target), Some(hash), Some(_))
                    if !hash.is_empty() && rewritten.contains(&target) =>
                {
                    let content =
                        std::fs::read(&target).map_err(|e| VenvError::io("read", &target, e))?;
                    let digest = URL_SAFE_NO_PAD.encode(Sha256::digest(&content));
                    lines.push(format!(
                        "{},sha256={digest},{}",
                        file.unwrap_or_default(),
                        content.len()
                    ));
                    changed = true;
                }
                _ => lines.push(line.to_string()),
            }
        }
        if changed {
            lines.push(String::new());
            std::fs::write(record, lines.join("\n"))
                .map_err(|e| VenvError::io("rewrite", record, e))?;
        }
    }
    Ok(())
}

/// `base` joined with the relative `path`, `..` resolved without touching the filesystem (a
/// RECORD names scripts as `../../../bin/x`, and `lib64` may be a symlink).
fn lexical_join(base: &Path, path: &str) -> PathBuf {
    let mut joined = base.to_path_buf();
    for component in Path::new(path).components() {
        match component {
            std::path::Component::ParentDir => {
                joined.pop();
            }
            std::path::Component::Normal(part) => joined.push(part),
            _ => {}
        }
    }
    joined
}

fn display_at(path: &Path, dir: &Path, to: &Path) -> String {
    match path.strip_prefix(dir) {
        Ok(rel) => to.join(rel).display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

pub(crate) fn walk_error(dir: &Path, e: walkdir::Error) -> VenvError {
    let path = e.path().unwrap_or(dir).to_path_buf();
    let source = e
        .into_io_error()
        .unwrap_or_else(|| std::io::Error::other("filesystem loop"));
    VenvError::io("read", path, source)
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut start = 0;
    while let Some(offset) = haystack[start..].iter().position(|&b| b == first) {
        let at = start + offset;
        if haystack[at + 1..].starts_with(rest) {
            return Some(at);
        }
        start = at + 1;
    }
    None
}

/// `haystack` with every occurrence of any needle replaced, or None if there was none.
fn replace_all(haystack: &[u8], needles: &[Vec<u8>], replacement: &[u8]) -> Option<Vec<u8>> {
    let mut current: Option<Vec<u8>> = None;
    for needle in needles {
        let source = current.as_deref().unwrap_or(haystack);
        let mut out = Vec::with_capacity(source.len());
        let mut rest = source;
        let mut replaced = false;
        while let Some(at) = find(rest, needle) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(replacement);
            rest = &rest[at + needle.len()..];
            replaced = true;
        }
        if replaced {
            out.extend_from_slice(rest);
            current = Some(out);
        }
    }
    current
}

/// Turns `#!<venv>/bin/python [args]` into the `/bin/sh` trampoline when the line is too long for
/// the kernel or the path has a space in it.
pub(crate) fn fix_long_shebang(content: Vec<u8>, venv: &Path) -> Vec<u8> {
    if !content.starts_with(b"#!") {
        return content;
    }
    let eol = content
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(content.len());
    let line = content[2..eol]
        .strip_suffix(b"\r")
        .unwrap_or(&content[2..eol]);
    let venv = venv.as_os_str().as_bytes();
    let line_trimmed = line.trim_ascii_start();
    if !line_trimmed.starts_with(venv) {
        return content;
    }
    let has_space = venv.contains(&b' ');
    if line.len() + 3 <= MAX_SHEBANG && !has_space {
        return content;
    }
    // The interpreter is the venv path plus everything up to the next blank.
    let after = &line_trimmed[venv.len()..];
    let interp_end = venv.len()
        + after
            .iter()
            .position(|b| b.is_ascii_whitespace())
            .unwrap_or(after.len());
    let interpreter = &line_trimmed[..interp_end];
    let args = line_trimmed[interp_end..].trim_ascii();

    let mut out = Vec::with_capacity(content.len() + 64);
    out.extend_from_slice(b"#!/bin/sh\n'''exec' \"");
    out.extend_from_slice(interpreter);
    out.extend_from_slice(b"\" ");
    if !args.is_empty() {
        out.extend_from_slice(args);
        out.push(b' ');
    }
    out.extend_from_slice(b"\"$0\" \"$@\"\n' '''\n");
    if eol < content.len() {
        out.extend_from_slice(&content[eol + 1..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_hashes_follow_rewritten_scripts() {
        let tmp = tempfile::tempdir().unwrap();
        let venv = tmp.path().join("staging");
        let dist_info = venv.join("lib/python3.11/site-packages/tool-1.0.dist-info");
        std::fs::create_dir_all(&dist_info).unwrap();
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        let script = format!("#!{}/bin/python\nimport tool\n", venv.display());
        std::fs::write(venv.join("bin/tool"), &script).unwrap();
        std::fs::write(
            dist_info.join("RECORD"),
            "../../../bin/tool,sha256=stale,99\ntool/__init__.py,sha256=keep,1\ntool-1.0.dist-info/RECORD,,\n",
        )
        .unwrap();
        relocate(&venv, &venv, Path::new("/opt/stackstorm/virtualenvs/tool")).unwrap();
        let content = std::fs::read(venv.join("bin/tool")).unwrap();
        let expected = format!(
            "../../../bin/tool,sha256={},{}",
            URL_SAFE_NO_PAD.encode(Sha256::digest(&content)),
            content.len()
        );
        let record = std::fs::read_to_string(dist_info.join("RECORD")).unwrap();
        let lines: Vec<&str> = record.lines().collect();
        assert_eq!(
            lines,
            [
                expected.as_str(),
                "tool/__init__.py,sha256=keep,1",
                "tool-1.0.dist-info/RECORD,,"
            ]
        );
    }

    #[test]
    fn replaces_every_occurrence() {
        let needles = vec![b"/tmp/b".to_vec()];
        let out = replace_all(b"x /tmp/b/bin y /tmp/b", &needles, b"/opt/v").unwrap();
        assert_eq!(out, b"x /opt/v/bin y /opt/v");
        assert!(replace_all(b"nothing", &needles, b"/opt/v").is_none());
    }

    #[test]
    fn short_shebangs_stay() {
        let script = b"#!/opt/v/bin/python\nimport sys\n".to_vec();
        assert_eq!(
            fix_long_shebang(script.clone(), Path::new("/opt/v")),
            script
        );
        let foreign = b"#!/usr/bin/env python\n".to_vec();
        assert_eq!(
            fix_long_shebang(foreign.clone(), Path::new("/opt/v")),
            foreign
        );
    }

    #[test]
    fn long_shebangs_become_trampolines() {
        let venv = format!("/opt/{}", "x".repeat(130));
        let script = format!("#!{venv}/bin/python\nimport sys\nprint(1)\n");
        let out =
            String::from_utf8(fix_long_shebang(script.into_bytes(), Path::new(&venv))).unwrap();
        assert_eq!(
            out,
            format!(
                "#!/bin/sh\n'''exec' \"{venv}/bin/python\" \"$0\" \"$@\"\n' '''\nimport sys\nprint(1)\n"
            )
        );
    }

    #[test]
    fn relocates_a_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let build = tmp.path().join("build");
        std::fs::create_dir_all(build.join("bin")).unwrap();
        let script = format!("#!{}/bin/python\nprint(1)\n", build.display());
        std::fs::write(build.join("bin/tool"), &script).unwrap();
        std::fs::write(
            build.join("blob"),
            [b"\0".as_slice(), build.as_os_str().as_bytes()].concat(),
        )
        .unwrap();
        std::os::unix::fs::symlink(build.join("bin/tool"), build.join("bin/link")).unwrap();
        let warnings = relocate(&build, &build, Path::new("/opt/v")).unwrap();
        assert_eq!(
            std::fs::read_to_string(build.join("bin/tool")).unwrap(),
            "#!/opt/v/bin/python\nprint(1)\n"
        );
        assert_eq!(
            std::fs::read_link(build.join("bin/link")).unwrap(),
            Path::new("/opt/v/bin/tool")
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("/opt/v/blob"), "{warnings:?}");
    }
}
