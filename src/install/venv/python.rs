//! Finding and asking the interpreter a pack virtualenv is built for.
//!
//! The interpreter is asked for its own `sys.executable` rather than trusting the path we were
//! given: a pyenv shim or a `python3` symlink resolves to the real binary there, and that binary's
//! path and version are what a virtualenv (and the cache key) depend on.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::VenvError;

/// A Python interpreter as it described itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonInfo {
    /// The interpreter to run: its own `sys.executable` (shims and PATH look-ups resolved, symlinks
    /// kept, so a venv records `/usr/bin/python3` rather than `/usr/bin/python3.11`).
    pub path: PathBuf,
    /// `path` with every symlink resolved.
    pub real_path: PathBuf,
    /// Full version, e.g. `3.11.7`.
    pub version: String,
    pub major: u32,
    pub minor: u32,
}

/// Works on Python 2 too, so an old interpreter gets a clear "too old" rather than a crash.
const PROBE_SCRIPT: &str = "import sys, os; e = sys.executable or ''; \
v = sys.version_info; \
sys.stdout.write('st2pack-probe\\n%s\\n%s\\n%d.%d.%d\\n' % (e, os.path.realpath(e) if e else '', v[0], v[1], v[2]))";

const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// Asks `python` what it is. A bare name such as `python3` is looked up on PATH.
pub async fn probe_python(python: &Path) -> Result<PythonInfo, VenvError> {
    let given = python.display().to_string();
    let resolved = resolve_program(python).ok_or_else(|| VenvError::PythonMissing {
        given: given.clone(),
        detail: if is_bare_name(python) {
            "was not found on PATH".to_string()
        } else {
            "does not exist or is not an executable file".to_string()
        },
    })?;
    // Absolute, because the probe runs in `/`.
    let resolved = std::path::absolute(&resolved).unwrap_or(resolved);

    let mut cmd = Command::new(&resolved);
    cmd.args(["-E", "-S", "-c", PROBE_SCRIPT])
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        // Python 2 has no -I: keep a stray `os.py` in the current directory out of the answer.
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(PROBE_TIMEOUT, cmd.output()).await {
        Err(_) => {
            return Err(VenvError::NotAPython {
                given,
                detail: format!("it did not answer within {}s", PROBE_TIMEOUT.as_secs()),
            });
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(VenvError::PythonMissing {
                given,
                detail: "could not be found (or its #! interpreter is missing)".to_string(),
            });
        }
        // ENOEXEC: a file that is neither a binary nor a script.
        Ok(Err(e)) if e.raw_os_error() == Some(8) => {
            return Err(VenvError::NotAPython {
                given,
                detail: "it is not an executable program".to_string(),
            });
        }
        Ok(Err(source)) => return Err(VenvError::PythonNotRunnable { given, source }),
        Ok(Ok(output)) => output,
    };

    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(VenvError::NotAPython {
            given,
            detail: match last {
                Some(line) => format!("it exited with {}: {}", output.status, line.trim()),
                None => format!("it exited with {}", output.status),
            },
        });
    }
    parse_probe(&String::from_utf8_lossy(&output.stdout), &resolved, &given)
}

fn parse_probe(stdout: &str, resolved: &Path, given: &str) -> Result<PythonInfo, VenvError> {
    let not_python = || VenvError::NotAPython {
        given: given.to_string(),
        detail: "it did not answer a Python version query".to_string(),
    };
    let mut lines = stdout.lines();
    if lines.next() != Some("st2pack-probe") {
        return Err(not_python());
    }
    let executable = lines.next().ok_or_else(not_python)?;
    let real = lines.next().ok_or_else(not_python)?;
    let version = lines.next().ok_or_else(not_python)?.trim().to_string();
    let mut parts = version.split('.').map(str::parse::<u32>);
    let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) else {
        return Err(not_python());
    };
    if (major, minor) < (3, 6) {
        return Err(VenvError::UnsupportedPython {
            given: given.to_string(),
            version,
        });
    }
    let path = if executable.starts_with('/') {
        PathBuf::from(executable)
    } else {
        std::path::absolute(resolved).unwrap_or_else(|_| resolved.to_path_buf())
    };
    let real_path = if real.starts_with('/') {
        PathBuf::from(real)
    } else {
        std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone())
    };
    Ok(PythonInfo {
        path,
        real_path,
        version,
        major,
        minor,
    })
}

fn is_bare_name(program: &Path) -> bool {
    let bytes = program.as_os_str().as_bytes();
    !bytes.is_empty() && !bytes.contains(&b'/')
}

/// Resolves a bare program name on PATH; a path with a slash is checked as it is.
pub(crate) fn resolve_program(program: &Path) -> Option<PathBuf> {
    if program.as_os_str().is_empty() {
        return None;
    }
    if !is_bare_name(program) {
        return is_executable_file(program).then(|| program.to_path_buf());
    }
    find_on_path(program.as_os_str())
}

/// The first executable file called `name` in a directory of PATH.
pub(crate) fn find_on_path(name: &OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable_file(candidate))
}

pub(crate) fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_probe_answer() {
        let info = parse_probe(
            "st2pack-probe\n/usr/bin/python3\n/usr/bin/python3.11\n3.11.2\n",
            Path::new("/usr/bin/python3"),
            "python3",
        )
        .unwrap();
        assert_eq!(info.path, Path::new("/usr/bin/python3"));
        assert_eq!(info.real_path, Path::new("/usr/bin/python3.11"));
        assert_eq!((info.major, info.minor), (3, 11));
        assert_eq!(info.version, "3.11.2");
    }

    #[test]
    fn rejects_python2_and_garbage() {
        let err = parse_probe(
            "st2pack-probe\n/usr/bin/python2\n/usr/bin/python2.7\n2.7.18\n",
            Path::new("/usr/bin/python2"),
            "python2",
        )
        .unwrap_err();
        assert!(err.to_string().contains("2.7.18"), "{err}");
        assert!(err.to_string().contains("--python"), "{err}");
        let err = parse_probe("-E -S -c ...\n", Path::new("/bin/echo"), "/bin/echo").unwrap_err();
        assert!(matches!(err, VenvError::NotAPython { .. }), "{err}");
    }

    #[test]
    fn bare_names_are_looked_up_on_path() {
        assert!(is_bare_name(Path::new("python3")));
        assert!(!is_bare_name(Path::new("./python3")));
        assert!(!is_bare_name(Path::new("/usr/bin/python3")));
        assert!(resolve_program(Path::new("sh")).is_some());
        assert!(resolve_program(Path::new("st2pack-no-such-program-xyz")).is_none());
    }

    #[tokio::test]
    async fn missing_interpreter_names_what_was_given() {
        let err = probe_python(Path::new("python-st2pack-missing"))
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("python-st2pack-missing"), "{msg}");
        assert!(msg.contains("--python PATH"), "{msg}");
    }

    #[tokio::test]
    async fn a_non_python_program_is_refused() {
        let err = probe_python(Path::new("/bin/echo")).await.unwrap_err();
        assert!(matches!(err, VenvError::NotAPython { .. }), "{err}");
    }
}
