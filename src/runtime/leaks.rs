//! No path of the build machine in a target virtualenv: its staging directory, its Python's
//! prefix and uv's cache do not exist on the cluster, so a file naming them (a shebang, a
//! `direct_url.json`, a build's `RECORD`) is a bug that would only show there.

use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::RuntimeError;

/// Fails on the first regular file under `venv` that contains one of `paths`.
pub fn check_no_build_paths(venv: &Path, paths: &[PathBuf]) -> Result<(), RuntimeError> {
    let needles: Vec<(String, memchr::memmem::Finder<'static>)> = paths
        .iter()
        .map(|path| path.display().to_string())
        .filter(|path| path.len() > 1)
        .map(|path| {
            let finder = memchr::memmem::Finder::new(path.as_bytes()).into_owned();
            (path, finder)
        })
        .collect();
    for entry in WalkDir::new(venv).sort_by_file_name() {
        let entry = entry.map_err(|error| RuntimeError::Io {
            path: error.path().unwrap_or(venv).to_path_buf(),
            action: "read the virtualenv",
            source: error.into(),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).map_err(RuntimeError::io(entry.path(), "read"))?;
        if let Some((leaked, _)) = needles
            .iter()
            .find(|(path, finder)| names(&bytes, finder, path.len()))
        {
            return Err(RuntimeError::BuildPathLeaked {
                file: entry.path().to_path_buf(),
                leaked: leaked.clone(),
            });
        }
    }
    Ok(())
}

/// Whether `bytes` names the path `finder` looks for, as a whole: `/usr/bin/python3` is not
/// named by `/usr/bin/python3.8`, but is by `/usr/bin/python3/` or `/usr/bin/python3"`.
fn names(bytes: &[u8], finder: &memchr::memmem::Finder<'_>, len: usize) -> bool {
    let continues_the_name = |b: &u8| b.is_ascii_alphanumeric() || b"._-+".contains(b);
    finder
        .find_iter(bytes)
        .any(|at| !bytes.get(at + len).is_some_and(continues_the_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_naming_a_build_path_is_found() {
        let scratch = tempfile::tempdir().unwrap();
        let venv = scratch.path().join("venv");
        std::fs::create_dir_all(venv.join("lib")).unwrap();
        std::fs::write(venv.join("lib/clean.py"), "print('/usr/bin/python3.9')\n").unwrap();
        let build = PathBuf::from("/root/.pyenv/versions/3.11.7");
        check_no_build_paths(&venv, std::slice::from_ref(&build)).unwrap();
        std::fs::write(
            venv.join("lib/leaky.py"),
            "#!/root/.pyenv/versions/3.11.7/bin/python\n",
        )
        .unwrap();
        let error = check_no_build_paths(&venv, &[build]).unwrap_err();
        assert!(
            matches!(&error, RuntimeError::BuildPathLeaked { file, .. } if file.ends_with("leaky.py")),
            "{error}"
        );
    }

    #[test]
    fn a_longer_name_that_starts_like_a_build_path_is_not_it() {
        let scratch = tempfile::tempdir().unwrap();
        let venv = scratch.path().join("venv");
        std::fs::create_dir_all(&venv).unwrap();
        let host = PathBuf::from("/usr/bin/python3");
        std::fs::write(
            venv.join("pyvenv.cfg"),
            "base-executable = /usr/bin/python3.8
",
        )
        .unwrap();
        check_no_build_paths(&venv, std::slice::from_ref(&host)).unwrap();
        std::fs::write(venv.join("script"), "#!/usr/bin/python3\n").unwrap();
        assert!(check_no_build_paths(&venv, &[host]).is_err());
    }
}
