//! Console scripts moved where a virtualenv has them, with the target's shebang.
//!
//! `uv pip install --target` puts scripts in `site-packages/bin/` with the build machine's
//! interpreter in their shebang. In a virtualenv they live in `bin/` and start with
//! `#!<venv on the cluster>/bin/python`, as pip writes them there; their `RECORD` entries move
//! with them (`../../../bin/NAME`, with the new hash), so that pip can still uninstall them.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};

use super::RuntimeError;

/// The longest shebang line Linux runs (`BINPRM_BUF_SIZE`, 128 with the newline).
const MAX_SHEBANG: usize = 127;

/// Moves `site_packages/bin/*` into `venv/bin/`, pointing Python scripts at
/// `final_venv/bin/python`, and fixes the `RECORD` of every distribution. Returns the scripts'
/// names.
pub fn relocate_scripts(
    venv: &Path,
    site_packages: &Path,
    final_venv: &Path,
) -> Result<Vec<String>, RuntimeError> {
    let from = site_packages.join("bin");
    let mut moved: Vec<(String, Vec<u8>)> = Vec::new();
    if !from.is_dir() {
        rewrite_records(site_packages, &moved)?;
        return Ok(Vec::new());
    }
    let shebang = shebang(&final_venv.join("bin/python"));
    let entries = fs::read_dir(&from).map_err(RuntimeError::io(&from, "read the directory"))?;
    for entry in entries {
        let entry = entry.map_err(RuntimeError::io(&from, "read the directory"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let source = entry.path();
        let destination = venv.join("bin").join(&name);
        if fs::symlink_metadata(&destination).is_ok() {
            return Err(RuntimeError::Io {
                path: destination,
                action: "install the console script",
                source: std::io::ErrorKind::AlreadyExists.into(),
            });
        }
        let content = fs::read(&source).map_err(RuntimeError::io(&source, "read"))?;
        let content = with_shebang(content, &shebang);
        fs::write(&destination, &content).map_err(RuntimeError::io(&destination, "write"))?;
        let mode = fs::metadata(&source)
            .map_err(RuntimeError::io(&source, "read"))?
            .permissions();
        fs::set_permissions(&destination, mode)
            .map_err(RuntimeError::io(&destination, "set the permissions of"))?;
        fs::remove_file(&source).map_err(RuntimeError::io(&source, "remove"))?;
        moved.push((name, content));
    }
    fs::remove_dir(&from).map_err(RuntimeError::io(&from, "remove"))?;
    rewrite_records(site_packages, &moved)?;
    Ok(moved.into_iter().map(|(name, _)| name).collect())
}

/// The first line(s) that make a script run with `python`. Past the kernel's limit, or with a
/// space, the script starts with `/bin/sh` and re-executes itself with Python, as pip does.
fn shebang(python: &Path) -> String {
    let python = python.display().to_string();
    let line = format!("#!{python}\n");
    if line.len() <= MAX_SHEBANG && !python.contains(' ') {
        line
    } else {
        format!("#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\n")
    }
}

/// `content` with its Python shebang replaced; other files (a compiled program, a shell
/// script) are left as they are.
fn with_shebang(content: Vec<u8>, shebang: &str) -> Vec<u8> {
    let line_end = |from: usize| {
        content[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(content.len(), |at| from + at)
    };
    let first_line_end = line_end(0);
    let first_line = &content[..first_line_end];
    // An interpreter path too long for `#!` (or with spaces) is written as a /bin/sh
    // trampoline: `#!/bin/sh`, `'''exec' '/path/python' "$0" "$@"`, `' '''`.
    let mut rest_from = None;
    if first_line == b"#!/bin/sh" && content.len() > first_line_end {
        let second_end = line_end(first_line_end + 1);
        let second = &content[first_line_end + 1..second_end];
        if second.starts_with(b"'''exec' ") && content.len() > second_end {
            let third_end = line_end(second_end + 1);
            if &content[second_end + 1..third_end] == b"' '''" {
                rest_from = Some(third_end + 1);
            }
        }
    } else if first_line.starts_with(b"#!") && memchr::memmem::find(first_line, b"python").is_some()
    {
        rest_from = Some(first_line_end + 1);
    }
    let Some(rest_from) = rest_from else {
        return content;
    };
    let mut out = shebang.as_bytes().to_vec();
    out.extend_from_slice(content.get(rest_from..).unwrap_or_default());
    out
}

/// The note uv leaves in the `.dist-info` of a distribution installed from a local path: a
/// timestamp, which would make two otherwise identical builds differ, so every virtualenv drops
/// it (here for a target runtime's, in `install::venv` for a native one) with its `RECORD` line.
pub(crate) const UV_CACHE_NOTE: &str = "uv_cache.json";

/// Whether a path of a `RECORD` line names the [`UV_CACHE_NOTE`].
pub(crate) fn is_uv_cache_note(path_in_record: &str) -> bool {
    path_in_record
        .trim_matches('"')
        .strip_suffix(UV_CACHE_NOTE)
        .is_some_and(|dir| dir.ends_with('/'))
}

/// Points every `bin/NAME` entry of a `RECORD` at the script's new place and content, and drops
/// the [`UV_CACHE_NOTE`].
fn rewrite_records(site_packages: &Path, moved: &[(String, Vec<u8>)]) -> Result<(), RuntimeError> {
    let entries = fs::read_dir(site_packages)
        .map_err(RuntimeError::io(site_packages, "read the directory"))?;
    for entry in entries {
        let entry = entry.map_err(RuntimeError::io(site_packages, "read the directory"))?;
        let dist_info = entry.path();
        if !entry.file_name().to_string_lossy().ends_with(".dist-info") {
            continue;
        }
        let cache_note = dist_info.join(UV_CACHE_NOTE);
        if cache_note.exists() {
            fs::remove_file(&cache_note).map_err(RuntimeError::io(&cache_note, "remove"))?;
        }
        let record: PathBuf = dist_info.join("RECORD");
        let Ok(text) = fs::read_to_string(&record) else {
            continue;
        };
        let mut rewritten = String::with_capacity(text.len());
        for line in text.lines() {
            let path = line.split(',').next().unwrap_or_default();
            if is_uv_cache_note(path) {
                continue;
            }
            let script = path
                .strip_prefix("bin/")
                .and_then(|name| moved.iter().find(|(moved, _)| moved == name));
            match script {
                Some((name, content)) => rewritten.push_str(&format!(
                    "../../../bin/{name},sha256={},{}\n",
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(Sha256::digest(content)),
                    content.len()
                )),
                None => {
                    rewritten.push_str(line);
                    rewritten.push('\n');
                }
            }
        }
        fs::write(&record, rewritten).map_err(RuntimeError::io(&record, "write"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_shebangs_point_at_the_target_venv() {
        let shebang = shebang(Path::new("/opt/stackstorm/virtualenvs/demo/bin/python"));
        assert_eq!(shebang, "#!/opt/stackstorm/virtualenvs/demo/bin/python\n");
        let script = b"#!/root/.pyenv/versions/3.11.7/bin/python\nimport sys\n".to_vec();
        assert_eq!(
            with_shebang(script, &shebang),
            b"#!/opt/stackstorm/virtualenvs/demo/bin/python\nimport sys\n"
        );
        let shell = b"#!/bin/sh\necho hi\n".to_vec();
        assert_eq!(with_shebang(shell.clone(), &shebang), shell);
        // A long build-machine path, written by the installer as a /bin/sh trampoline.
        let trampoline =
            b"#!/bin/sh\n'''exec' '/tmp/cache/runtimes-v1/ab/usr/bin/python3.9' \"$0\" \"$@\"\n' '''\nimport sys\n"
                .to_vec();
        assert_eq!(
            with_shebang(trampoline, &shebang),
            b"#!/opt/stackstorm/virtualenvs/demo/bin/python\nimport sys\n"
        );
    }

    #[test]
    fn a_long_venv_path_gets_the_sh_trampoline() {
        let long = format!("/opt/stackstorm/virtualenvs/{}/bin/python", "p".repeat(120));
        let shebang = shebang(Path::new(&long));
        assert!(shebang.starts_with("#!/bin/sh\n'''exec' \""), "{shebang}");
        assert!(shebang.contains(&long));
    }
}
