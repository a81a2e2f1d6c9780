//! Running the installers: uv (one resolve, fast) or `python -m venv` + pip (always there).
//!
//! Each child runs in the build directory with a scrubbed Python environment (no PYTHONPATH,
//! PYTHONHOME, user site or `PIP_USER`-style redirections) but with the user's index and proxy
//! settings passed through untouched, no stdin and no prompts. Its output is kept so that a failure
//! can show the installer's own explanation.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;

use tokio::process::Command;

use super::{PythonInfo, VenvError, VenvSpec};

/// Which tool builds the virtualenv (`--installer uv|pip|auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Installer {
    /// uv when it is on PATH (and the interpreter is 3.8+, which uv supports), else pip.
    #[default]
    Auto,
    /// `uv venv` + `uv pip install`.
    Uv,
    /// `python -m venv` + `pip install`.
    Pip,
}

impl Installer {
    pub fn as_str(self) -> &'static str {
        match self {
            Installer::Auto => "auto",
            Installer::Uv => "uv",
            Installer::Pip => "pip",
        }
    }
}

impl fmt::Display for Installer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Installer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Installer::Auto),
            "uv" => Ok(Installer::Uv),
            "pip" => Ok(Installer::Pip),
            _ => Err(format!(
                "unknown installer `{s}`; use one of: uv, pip, auto"
            )),
        }
    }
}

/// The installer actually used, once `Auto` is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Engine {
    Uv(PathBuf),
    Pip,
}

impl Engine {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Engine::Uv(_) => "uv",
            Engine::Pip => "pip",
        }
    }
}

pub(crate) fn resolve_engine(
    installer: Installer,
    python: &PythonInfo,
) -> Result<Engine, VenvError> {
    let uv = || super::python::find_on_path("uv".as_ref());
    match installer {
        Installer::Pip => Ok(Engine::Pip),
        Installer::Uv => uv().map(Engine::Uv).ok_or(VenvError::UvNotFound),
        Installer::Auto if (python.major, python.minor) >= (3, 8) => {
            Ok(uv().map(Engine::Uv).unwrap_or(Engine::Pip))
        }
        Installer::Auto => Ok(Engine::Pip),
    }
}

/// A package every pack virtualenv gets, as virtualenv seeds it.
pub(crate) struct Seed {
    pub name: &'static str,
    pub requirement: &'static str,
    /// Only releases whose major version is below this satisfy `requirement`.
    pub below_major: Option<u64>,
    /// Only of use to install more packages, which never happens on the chart's read-only
    /// volumes: image builds leave it out (`--keep-pip` keeps it).
    pub only_to_install: bool,
}

/// `setuptools` 81 dropped `pkg_resources`, which many packs still import.
pub(crate) const SEEDS: [Seed; 3] = [
    Seed {
        name: "pip",
        requirement: "pip",
        below_major: None,
        only_to_install: true,
    },
    Seed {
        name: "setuptools",
        requirement: "setuptools<81",
        below_major: Some(81),
        only_to_install: false,
    },
    Seed {
        name: "wheel",
        requirement: "wheel",
        below_major: None,
        only_to_install: true,
    },
];

/// What upstream `st2-pack-install` installs into every pack virtualenv.
pub const BASE_REQUIREMENT: &str = "six>=1.9.0,<2.0";

/// The `*.whl` files directly in `dir` (what `--find-links` sees), sorted, with their sizes.
pub(crate) fn wheelhouse_listing(dir: &Path) -> Result<Vec<(String, u64)>, VenvError> {
    let err = |source| VenvError::Wheelhouse {
        path: dir.to_path_buf(),
        source,
    };
    let mut listing = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let meta = std::fs::metadata(entry.path()).map_err(err)?;
        if meta.is_file() {
            listing.push((name, meta.len()));
        }
    }
    listing.sort();
    Ok(listing)
}

fn normalize_name(name: &str) -> String {
    name.to_ascii_lowercase().replace(['-', '.'], "_")
}

/// The seeds to install: those the new venv lacks (`python -m venv` already has ensurepip's pip,
/// and setuptools before Python 3.12), without pip and wheel unless `keep_pip`. With a
/// wheelhouse, a missing seed without a suitable wheel there is skipped with a warning instead
/// of failing the whole build.
pub(crate) fn select_seeds(
    wheelhouse: Option<&[(String, u64)]>,
    site_packages: Option<&Path>,
    keep_pip: bool,
) -> (Vec<&'static str>, Vec<String>) {
    let installed = site_packages.map(installed_dists).unwrap_or_default();
    let mut chosen = Vec::new();
    let mut warnings = Vec::new();
    for seed in SEEDS
        .iter()
        .filter(|seed| keep_pip || !seed.only_to_install)
    {
        let installed = installed.iter().map(String::as_str);
        if any_satisfies(installed, ".dist-info", seed) {
            continue;
        }
        let available = match wheelhouse {
            None => true,
            Some(listing) => any_satisfies(listing.iter().map(|(n, _)| n.as_str()), ".whl", seed),
        };
        if available {
            chosen.push(seed.requirement);
        } else {
            warnings.push(format!(
                "the wheelhouse has no wheel for `{}`, so the virtualenv is built without it; add \
                 a {}-*.whl file to the wheelhouse to include it",
                seed.requirement, seed.name
            ));
        }
    }
    (chosen, warnings)
}

fn any_satisfies<'a>(names: impl IntoIterator<Item = &'a str>, suffix: &str, seed: &Seed) -> bool {
    names.into_iter().any(|file| {
        file.strip_suffix(suffix)
            .is_some_and(|stem| dist_satisfies(stem, seed))
    })
}

fn installed_dists(site_packages: &Path) -> Vec<String> {
    std::fs::read_dir(site_packages)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `name-version[-...]` (a wheel or dist-info stem) is a release that satisfies `seed`.
fn dist_satisfies(stem: &str, seed: &Seed) -> bool {
    let mut parts = stem.split('-');
    let (Some(name), Some(version)) = (parts.next(), parts.next()) else {
        return false;
    };
    if normalize_name(name) != normalize_name(seed.name) {
        return false;
    }
    match seed.below_major {
        None => true,
        Some(limit) => {
            let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
            // An unparseable version is left for the installer to judge.
            digits
                .parse::<u64>()
                .map(|major| major < limit)
                .unwrap_or(true)
        }
    }
}

/// Creates the empty virtualenv (with pip, for the pip engine) in `build_dir`.
pub(crate) async fn create(
    engine: &Engine,
    spec: &VenvSpec,
    build_dir: &Path,
) -> Result<(), VenvError> {
    let prompt = prompt_for(&spec.final_dir);
    let (mut cmd, label) = match engine {
        Engine::Uv(uv) => {
            let mut cmd = Command::new(uv);
            cmd.arg("venv").arg("--python").arg(&spec.python.path);
            (cmd, "uv venv".to_string())
        }
        Engine::Pip => {
            let mut cmd = Command::new(&spec.python.path);
            cmd.args(["-m", "venv"]);
            (cmd, format!("{} -m venv", spec.python.path.display()))
        }
    };
    if spec.system_site_packages {
        cmd.arg("--system-site-packages");
    }
    cmd.arg("--prompt").arg(prompt).arg(build_dir);
    run(cmd, label, build_dir, &spec.final_dir, CREATE_HINT).await
}

/// Installs seeds, the base requirement and the pack's requirements in one installer run.
pub(crate) async fn install(
    engine: &Engine,
    spec: &VenvSpec,
    build_dir: &Path,
    seeds: &[&str],
) -> Result<(), VenvError> {
    let locked = locked_requirements_file(spec)?;
    let mut packages: Vec<OsString> = Vec::new();
    if let Some(locked) = &locked {
        // Exactly the lock file's versions, each file checked against its hashes.
        packages.extend(["--require-hashes".into(), "-r".into()]);
        packages.push(locked.path().into());
    } else {
        packages.extend(seeds.iter().map(OsString::from));
        if spec.base_requirements {
            packages.push(BASE_REQUIREMENT.into());
        }
        if let Some(requirements) = &spec.requirements {
            packages.push("-r".into());
            packages.push(requirements.into());
        }
    }
    if packages.is_empty() {
        return Ok(());
    }
    let venv_python = build_dir.join("bin").join("python");
    let (mut cmd, label) = match engine {
        Engine::Uv(uv) => {
            let mut cmd = Command::new(uv);
            cmd.args(["pip", "install", "--python"])
                .arg(&venv_python)
                .args(["--link-mode", "copy"]);
            (cmd, "uv pip install".to_string())
        }
        Engine::Pip => {
            let mut cmd = Command::new(&venv_python);
            cmd.args([
                "-m",
                "pip",
                "install",
                // Like upstream's `pip install -U -r`: named requirements (and the seeds that
                // ensurepip put there) move to what the index or wheelhouse offers.
                "--upgrade",
                "--no-compile",
                "--disable-pip-version-check",
                "--no-input",
            ]);
            (cmd, "python -m pip install".to_string())
        }
    };
    if let Some(wheelhouse) = &spec.wheelhouse {
        cmd.arg("--no-index").arg("--find-links").arg(wheelhouse);
    }
    if spec.only_binary {
        match engine {
            Engine::Uv(_) => cmd.args(["--only-binary", ":all:"]),
            Engine::Pip => cmd.arg("--only-binary=:all:"),
        };
    }
    cmd.args(packages);
    run(cmd, label, build_dir, &spec.final_dir, INSTALL_HINT).await
}

/// The lock file's requirements of `spec`, if any, written where the installer reads them (never
/// into the virtualenv; removed when dropped). When the pack may choose where packages come from
/// (`--allow-pack-index-options`), its requirements' index options come first, so that what was
/// locked from the pack's index is found there again.
pub(crate) fn locked_requirements_file(
    spec: &VenvSpec,
) -> Result<Option<tempfile::NamedTempFile>, VenvError> {
    use std::io::Write;
    let Some(locked) = &spec.locked_requirements else {
        return Ok(None);
    };
    let mut text = String::new();
    if spec.allow_pack_index_options
        && let Some(requirements) = super::read_requirements(spec)?
    {
        for line in &requirements.index_options {
            text.push_str(line);
            text.push('\n');
        }
    }
    text.push_str(locked);
    let mut file = tempfile::Builder::new()
        .prefix("st2pack-locked-")
        .suffix(".txt")
        .tempfile()
        .map_err(|e| VenvError::io("create", std::env::temp_dir(), e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| VenvError::io("write", file.path(), e))?;
    Ok(Some(file))
}

/// Removes the pip (and wheel) that `python -m venv` seeded, once everything is installed: they
/// cannot run on the chart's read-only volumes (see [`Seed::only_to_install`]).
pub(crate) async fn remove_pip(spec: &VenvSpec, build_dir: &Path) -> Result<(), VenvError> {
    let mut cmd = Command::new(build_dir.join("bin").join("python"));
    cmd.args(["-m", "pip", "uninstall", "--yes", "--no-input"])
        .args(SEEDS.iter().filter(|s| s.only_to_install).map(|s| s.name));
    let label = "python -m pip uninstall".to_string();
    run(cmd, label, build_dir, &spec.final_dir, INSTALL_HINT).await
}

/// The venv's prompt: the name it will have, not the staging directory's.
fn prompt_for(final_dir: &Path) -> OsString {
    final_dir
        .file_name()
        .map(OsString::from)
        .unwrap_or_else(|| "venv".into())
}

/// Variables that would make a child use another Python tree or install somewhere else.
const REMOVED_ENV: [&str; 10] = [
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "PIP_USER",
    "PIP_TARGET",
    "PIP_PREFIX",
    "PIP_ROOT",
];

/// Applies the build environment to a child: see the module docs.
pub(crate) fn sanitize(cmd: &mut Command, cwd: &Path) {
    for name in REMOVED_ENV {
        cmd.env_remove(name);
    }
    cmd.envs(crate::runtime::install::absolute_cache_env());
    cmd.env("PIP_NO_INPUT", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        // With --system-site-packages a user site would count as "already installed".
        .env("PYTHONNOUSERSITE", "1")
        // The installers' own imports must not leave timestamp .pyc in the venv.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("UV_LINK_MODE", "copy")
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("UV_NO_PROGRESS", "1")
        .env("NO_COLOR", "1")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
}

const CREATE_HINT: &str = "Check that the interpreter can create virtualenvs (Debian and Ubuntu \
     need the python3-venv package), or choose the other --installer";
const INSTALL_HINT: &str =
    "Check the pack's requirements.txt and the index or wheelhouse it installs from, then retry";
const DISK_FULL_HINT: &str = "The disk holding the virtualenvs is full (No space left on \
     device): free space there, or point --virtualenvs-dir and --cache-dir at a disk with room, \
     then retry";

const HASH_HINT: &str = "A file's sha256 is not one the lock file allows: the index or \
     wheelhouse serves another file under the same name and version. Find out why before \
     trusting it; if the new file is right, lock again with `st2pack lock`";

/// Less room than this where a virtualenv is built means it cannot be built there.
const NEARLY_FULL: u64 = 16 << 20;

/// A full disk makes every installer step fail in its own words, and `python -m venv` does not
/// even say so (ensurepip's output is hidden); it is what to fix, whatever the step's usual hint
/// says. `free` is the room left where the virtualenv is built.
fn hint_for(output: &str, free: Option<u64>, usual: &'static str) -> &'static str {
    let says_full = ["No space left on device", "[Errno 28]", "os error 28"]
        .iter()
        .any(|needle| output.contains(needle));
    if says_full || free.is_some_and(|free| free < NEARLY_FULL) {
        DISK_FULL_HINT
    } else if output.contains("Hash mismatch") || output.contains("DO NOT MATCH THE HASHES") {
        HASH_HINT
    } else {
        usual
    }
}

/// The bytes an unprivileged process can still write on the filesystem holding `dir`.
fn free_space(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

async fn run(
    mut cmd: Command,
    label: String,
    cwd: &Path,
    final_dir: &Path,
    hint: &'static str,
) -> Result<(), VenvError> {
    sanitize(&mut cmd, cwd);
    let output = cmd.output().await.map_err(|source| VenvError::Spawn {
        program: label.clone(),
        source,
    })?;
    if output.status.success() {
        return Ok(());
    }
    let status = output.status.to_string();
    let output = output_tail(&output.stdout, &output.stderr, TAIL_LINES);
    Err(VenvError::Installer {
        command: label,
        status,
        final_dir: final_dir.to_path_buf(),
        hint: hint_for(&output, free_space(cwd), hint),
        output,
    })
}

const TAIL_LINES: usize = 40;
const MAX_LINE: usize = 1000;

/// The last `n` lines of stdout followed by stderr (where installers put the reason).
pub(crate) fn output_tail(stdout: &[u8], stderr: &[u8], n: usize) -> String {
    let stdout = String::from_utf8_lossy(stdout);
    let stderr = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .map(|l| l.trim_end())
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(n);
    lines[start..]
        .iter()
        .map(|line| match line.char_indices().nth(MAX_LINE) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => (*line).to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(names: &[&str]) -> Vec<(String, u64)> {
        names.iter().map(|n| (n.to_string(), 1)).collect()
    }

    #[test]
    fn seeds_without_wheels_are_skipped_with_a_warning() {
        let wh = listing(&[
            "pip-23.2.1-py3-none-any.whl",
            "Setuptools-65.5.0-py3-none-any.WHL",
        ]);
        let (chosen, warnings) = select_seeds(Some(&wh), None, true);
        assert_eq!(chosen, ["pip"]);
        assert_eq!(warnings.len(), 2);
        let wh = listing(&[
            "pip-23.2.1-py3-none-any.whl",
            "Setuptools-65.5.0-py3-none-any.whl",
        ]);
        let (chosen, warnings) = select_seeds(Some(&wh), None, true);
        assert_eq!(chosen, ["pip", "setuptools<81"]);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("`wheel`"), "{warnings:?}");
    }

    #[test]
    fn a_lean_virtualenv_gets_setuptools_only() {
        let (chosen, warnings) = select_seeds(Some(&listing(&[])), None, false);
        assert!(chosen.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("`setuptools<81`"), "{warnings:?}");
        assert_eq!(select_seeds(None, None, false).0, ["setuptools<81"]);
    }

    #[test]
    fn a_too_new_setuptools_does_not_count() {
        let wh = listing(&[
            "setuptools-81.0.0-py3-none-any.whl",
            "wheel-0.45.1-py3-none-any.whl",
        ]);
        let (chosen, warnings) = select_seeds(Some(&wh), None, true);
        assert_eq!(chosen, ["wheel"]);
        assert_eq!(warnings.len(), 2);
        let (chosen, warnings) = select_seeds(None, None, true);
        assert_eq!(chosen.len(), 3);
        assert!(warnings.is_empty());
    }

    #[test]
    fn seeds_already_in_the_venv_are_not_reinstalled() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("pip-23.2.1.dist-info")).unwrap();
        std::fs::create_dir(tmp.path().join("setuptools-82.0.0.dist-info")).unwrap();
        let (chosen, warnings) = select_seeds(Some(&[]), Some(tmp.path()), true);
        assert!(chosen.is_empty());
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let (chosen, _) = select_seeds(None, Some(tmp.path()), true);
        assert_eq!(chosen, ["setuptools<81", "wheel"]);
    }

    #[test]
    fn names_are_normalised() {
        let seed = Seed {
            name: "my-pkg",
            requirement: "my-pkg",
            below_major: None,
            only_to_install: false,
        };
        assert!(dist_satisfies("My_Pkg-1.0-py3-none-any", &seed));
        assert!(dist_satisfies("my.pkg-1.0", &seed));
        assert!(!dist_satisfies("my_pkg2-1.0-py3-none-any", &seed));
    }

    #[test]
    fn installer_parses() {
        assert_eq!("UV".parse::<Installer>(), Ok(Installer::Uv));
        assert_eq!("pip".parse::<Installer>(), Ok(Installer::Pip));
        assert_eq!("auto".parse::<Installer>(), Ok(Installer::Auto));
        let err = "conda".parse::<Installer>().unwrap_err();
        assert!(
            err.contains("conda") && err.contains("uv, pip, auto"),
            "{err}"
        );
    }

    #[test]
    fn a_full_disk_is_named_whatever_the_step() {
        let full = "OSError: [Errno 28] No space left on device: '/v/lib/python3.11'";
        let room = Some(1 << 30);
        assert_eq!(hint_for(full, room, CREATE_HINT), DISK_FULL_HINT);
        assert_eq!(
            hint_for("error: os error 28", None, INSTALL_HINT),
            DISK_FULL_HINT
        );
        let silent = "returned non-zero exit status 1.";
        assert_eq!(hint_for(silent, Some(4096), CREATE_HINT), DISK_FULL_HINT);
        assert_eq!(hint_for(silent, room, CREATE_HINT), CREATE_HINT);
        assert!(free_space(Path::new("/")).is_some());
    }

    #[test]
    fn tail_keeps_the_last_lines_with_stderr_last() {
        let out = b"a\nb\n";
        let err = b"c\n\nERROR: boom\n";
        assert_eq!(output_tail(out, err, 2), "c\nERROR: boom");
        assert_eq!(output_tail(out, err, 40), "a\nb\nc\nERROR: boom");
    }
}
