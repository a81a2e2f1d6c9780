//! Runs the real binaries in an isolated sandbox: its own packs, virtualenvs and cache
//! directories, an offline wheelhouse, and no st2.conf or ST2_* variables from the machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::wheel::{build_wheel, seed_wheelhouse};

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

/// What a run of a binary produced.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn assert_ok(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "expected success\n--- stderr\n{}\n--- stdout\n{}",
            self.stderr, self.stdout
        );
        self
    }

    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "expected exit {code}\n--- stderr\n{}\n--- stdout\n{}",
            self.stderr, self.stdout
        );
        self
    }

    pub fn assert_stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n--- stderr\n{}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Fills `dir` with pip and setuptools (offline, from the interpreter's ensurepip), a small
/// `six`, and the fixture library the `with_reqs` pack requires.
pub fn fill_wheelhouse(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    seed_wheelhouse(dir);
    build_wheel(
        dir,
        "six",
        "1.16.0",
        &[("six.py", "__version__ = '1.16.0'\nPY3 = True\n")],
        &[],
        &[],
    );
    build_wheel(
        dir,
        "st2pack-fixture-lib",
        "1.2.0",
        &[(
            "fixture_lib/__init__.py",
            "def shout(text):\n    return text.upper() + '!'\n",
        )],
        &[],
        &[],
    );
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("st2pack-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn packs(&self) -> PathBuf {
        self.path().join("packs")
    }

    pub fn venvs(&self) -> PathBuf {
        self.path().join("virtualenvs")
    }

    pub fn cache(&self) -> PathBuf {
        self.path().join("cache")
    }

    /// The sandbox's offline wheelhouse (see [`fill_wheelhouse`]), made on first use.
    pub fn wheelhouse(&self) -> PathBuf {
        let dir = self.path().join("wheelhouse");
        if !dir.exists() {
            fill_wheelhouse(&dir);
        }
        dir
    }

    /// `st2-pack-install` with the sandbox's directories and wheelhouse, then `args`.
    pub fn install(&self, args: &[&str]) -> Run {
        self.install_with(args, &[])
    }

    pub fn install_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = self.install_command(env);
        command
            .arg("--wheelhouse")
            .arg(self.wheelhouse())
            .args(args);
        Run::from(command.output().unwrap())
    }

    /// `st2-pack-install` with the sandbox's directories, and no wheelhouse.
    pub fn install_command(&self, env: &[(&str, &str)]) -> Command {
        let mut command = self.command(env!("CARGO_BIN_EXE_st2-pack-install"), env);
        command
            .arg("--packs-dir")
            .arg(self.packs())
            .arg("--virtualenvs-dir")
            .arg(self.venvs())
            .arg("--cache-dir")
            .arg(self.cache());
        command
    }

    /// `st2pack build` offline, for this machine's Python: the cache directory `cache`, the
    /// sandbox's wheelhouse, Debian's interpreter (under /usr, so that it can be bind-mounted
    /// into an unpacked image) and `--runtime host`. The test adds packs, base and targets.
    pub fn build_command(&self, cache: &Path, env: &[(&str, &str)]) -> Command {
        let mut command = self.command(env!("CARGO_BIN_EXE_st2pack"), env);
        command
            .arg("build")
            .arg("--cache-dir")
            .arg(cache)
            .arg("--wheelhouse")
            .arg(self.wheelhouse())
            .args(["--python", "/usr/bin/python3", "--runtime", "host"]);
        command
    }

    /// A binary with a clean environment: no st2.conf, no ST2_* overrides, no PYTHONPATH.
    pub fn command(&self, program: &str, env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(program);
        for (key, _) in std::env::vars() {
            if key.starts_with("ST2_")
                || key == "PYTHONPATH"
                || key.starts_with("PIP_")
                || key.starts_with("UV_")
            {
                command.env_remove(key);
            }
        }
        command.env("HOME", self.path());
        command.env("XDG_CACHE_HOME", self.path().join("xdg-cache"));
        command.env_remove("ST2_CONFIG_PATH");
        for (key, value) in env {
            command.env(key, value);
        }
        command.stdin(std::process::Stdio::null());
        command
    }

    /// Runs the virtualenv's python of pack `name` with `-c code` and returns stdout.
    pub fn venv_python(&self, name: &str, code: &str) -> String {
        let output = Command::new(self.venvs().join(name).join("bin/python"))
            .args(["-c", code])
            .env_remove("PYTHONPATH")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "venv python failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}
