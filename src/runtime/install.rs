//! Requirements installed for the target with uv, on any build machine: uv resolves and picks
//! wheels for the target's Python version, platform and markers (`--python-version`,
//! `--python-platform`) and unpacks them into the venv's site-packages (`--target`). It runs
//! with the build machine's interpreter only to build pure-Python source distributions; one
//! that compiles code would be built for the wrong Python, which uv refuses and we explain.
//!
//! uv runs blocking: this is one child process per virtualenv, and callers in async code run
//! it on a blocking thread.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::RuntimeError;
use super::tags::target_tag;
use super::target::TargetRuntime;

/// What to install and where from.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The uv executable (`uv` is looked up on PATH).
    pub uv: PathBuf,
    /// Requirement specifiers, as in a requirements file (`six>=1.9.0,<2.0`).
    pub requirements: Vec<String>,
    /// Requirements files (`-r`).
    pub requirement_files: Vec<PathBuf>,
    /// A directory of wheels (`--find-links`).
    pub wheelhouse: Option<PathBuf>,
    /// Use only the wheelhouse, no index (`--no-index`).
    pub no_index: bool,
    /// Never build a source distribution, even a pure-Python one (`--only-binary :all:`).
    pub only_binary: bool,
    /// uv's cache directory; uv's default when `None`.
    pub cache_dir: Option<PathBuf>,
    /// The interpreter uv builds source distributions with (`--python`): the runtime image's,
    /// through its launcher. `None`: one of this machine's, which only pure-Python ones suit.
    pub python: Option<PathBuf>,
    /// Every requirement is pinned with hashes (a lock file's): refuse any file whose hash
    /// differs (`--require-hashes`).
    pub require_hashes: bool,
    /// How messages name what is installed, when not by its files (a temporary file).
    pub described_as: Option<String>,
}

impl InstallOptions {
    pub fn new(requirements: Vec<String>) -> Self {
        InstallOptions {
            uv: PathBuf::from("uv"),
            requirements,
            requirement_files: Vec::new(),
            wheelhouse: None,
            no_index: false,
            only_binary: false,
            cache_dir: None,
            python: None,
            require_hashes: false,
            described_as: None,
        }
    }

    /// How messages name what was asked for.
    fn describe(&self) -> String {
        if let Some(described) = &self.described_as {
            return described.clone();
        }
        let mut parts: Vec<String> = self
            .requirement_files
            .iter()
            .map(|file| file.display().to_string())
            .collect();
        parts.extend(self.requirements.iter().map(|r| format!("`{r}`")));
        parts.join(", ")
    }
}

/// What uv reported about the run that matters afterwards.
#[derive(Debug, Clone)]
pub struct UvRun {
    /// The build machine's interpreter uv used ("Using CPython ... at: PATH"), which must not
    /// appear in the virtualenv.
    pub host_interpreter: Option<PathBuf>,
}

/// Variables that would make uv install somewhere else or for another Python.
const REMOVED_ENV: [&str; 8] = [
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "UV_PYTHON",
    "UV_SYSTEM_PYTHON",
    "UV_TARGET",
    "UV_PREFIX",
];

/// The installers' cache directories given relative to where st2pack was started, made absolute:
/// the installers run in other directories (a relative `UV_CACHE_DIR` would land in the
/// virtualenv being built).
pub fn absolute_cache_env() -> Vec<(&'static str, PathBuf)> {
    ["UV_CACHE_DIR", "PIP_CACHE_DIR"]
        .into_iter()
        .filter_map(|name| {
            let value = PathBuf::from(std::env::var_os(name)?);
            let absolute = std::path::absolute(&value).ok()?;
            (value.is_relative() && !value.as_os_str().is_empty()).then_some((name, absolute))
        })
        .collect()
}

/// Installs `options` into `site_packages` for `target`.
pub fn install(
    site_packages: &Path,
    target: &TargetRuntime,
    options: &InstallOptions,
) -> Result<UvRun, RuntimeError> {
    if options.requirements.is_empty() && options.requirement_files.is_empty() {
        return Ok(UvRun {
            host_interpreter: None,
        });
    }
    let mut command = Command::new(&options.uv);
    command
        .args(["pip", "install", "--target"])
        .arg(site_packages)
        .arg("--python-version")
        .arg(target.python.to_string())
        .arg("--python-platform")
        .arg(target.platform.uv_triple());
    if let Some(python) = &options.python {
        command.arg("--python").arg(python);
    }
    if let Some(wheelhouse) = &options.wheelhouse {
        command.arg("--find-links").arg(wheelhouse);
    }
    if options.no_index {
        command.arg("--no-index");
    }
    if options.only_binary {
        command.args(["--only-binary", ":all:"]);
    }
    if let Some(cache) = &options.cache_dir {
        command.arg("--cache-dir").arg(cache);
    }
    if options.require_hashes {
        command.arg("--require-hashes");
    }
    for file in &options.requirement_files {
        command.arg("-r").arg(file);
    }
    command.arg("--").args(&options.requirements);
    for name in REMOVED_ENV {
        command.env_remove(name);
    }
    command.envs(absolute_cache_env());
    command
        .env("UV_LINK_MODE", "copy")
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("UV_NO_PROGRESS", "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    let output = command
        .output()
        .map_err(|source| RuntimeError::UvNotRunnable {
            uv: options.uv.clone(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let host_interpreter = stderr
        .lines()
        .find_map(|line| {
            line.split_once(" interpreter at: ")
                .map(|(_, path)| path.trim())
        })
        .map(PathBuf::from);
    if output.status.success() {
        return Ok(UvRun { host_interpreter });
    }
    let detail = last_lines(&stderr, 20);
    Err(match needs_compiling(&stderr) {
        Some((package, version)) => RuntimeError::NeedsCompiling {
            package,
            version,
            target: target_tag(target),
            detail,
        },
        None => RuntimeError::InstallFailed {
            requirements: options.describe(),
            target: target.describe(),
            detail,
        },
    })
}

/// The distribution (name, version) uv could not use because it only has a source distribution
/// that does not build into a wheel for the target, from uv's own messages:
/// "Failed to build `lxml==4.6.5`" (built here, for the wrong Python, or failed to compile) or
/// "Because lxml==4.6.5 has no usable wheels" (building was disabled).
fn needs_compiling(stderr: &str) -> Option<(String, String)> {
    let split = |pinned: &str| {
        pinned
            .split_once("==")
            .map(|(name, version)| (name.trim().to_string(), version.trim().to_string()))
    };
    for line in stderr.lines() {
        let built = line
            .split_once("and build `")
            .or_else(|| line.split_once("Failed to build `"))
            .and_then(|(_, rest)| rest.split('`').next());
        let unusable = line
            .split_once(" has no usable wheels")
            .and_then(|(before, _)| before.rsplit(' ').next());
        if let Some(found) = built.or(unusable).and_then(split) {
            return Some(found);
        }
    }
    None
}

/// The end of uv's output, without the line naming the build machine's interpreter.
fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.contains(" interpreter at: ") && !line.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvs_messages_name_the_distribution_that_needs_compiling() {
        let built = "error: Failed to download and build `cext==1.0`\n  cause: The built wheel \
                     `cext-1.0-cp311-cp311-linux_x86_64.whl` is not compatible";
        assert_eq!(
            needs_compiling(built),
            Some(("cext".to_string(), "1.0".to_string()))
        );
        let disabled = "  cause: Because lxml==4.6.5 has no usable wheels and you require \
                        lxml==4.6.5, we can conclude";
        assert_eq!(
            needs_compiling(disabled),
            Some(("lxml".to_string(), "4.6.5".to_string()))
        );
        let missing = "  cause: Because nothere was not found in the provided package locations";
        assert_eq!(needs_compiling(missing), None);
    }
}
