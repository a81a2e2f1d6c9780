//! A runtime described without its image: the cluster's Python version, where its interpreter
//! lives there, and the platform its wheels must be built for.
//!
//! Nothing here runs or even looks for the interpreter: its path only matters inside the pod, so
//! the build machine never needs it to exist.

use std::fmt;
use std::path::{Path, PathBuf};

use super::RuntimeError;

/// The oldest Python a pack virtualenv may target: StackStorm itself needs 3.6 or later.
const OLDEST: PythonVersion = PythonVersion { major: 3, minor: 6 };

/// A CPython `MAJOR.MINOR`: what decides the ABI of extension modules and `lib/pythonX.Y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PythonVersion {
    pub major: u8,
    pub minor: u8,
}

impl PythonVersion {
    /// Parses `--target-python X.Y`; refuses Python 2 and 3 older than 3.6.
    pub fn parse(given: &str) -> Result<Self, RuntimeError> {
        let bad = |reason: &str| RuntimeError::BadPythonVersion {
            given: given.to_string(),
            reason: reason.to_string(),
        };
        let (major, minor) = given
            .trim()
            .split_once('.')
            .ok_or_else(|| bad("not MAJOR.MINOR"))?;
        if minor.contains('.') {
            return Err(bad(
                "only MAJOR.MINOR counts (the ABI does not change with the patch release)",
            ));
        }
        let number = |part: &str| {
            part.parse::<u8>()
                .ok()
                .filter(|_| part.bytes().all(|b| b.is_ascii_digit()))
        };
        let (Some(major), Some(minor)) = (number(major), number(minor)) else {
            return Err(bad("not two numbers MAJOR.MINOR"));
        };
        let version = PythonVersion { major, minor };
        if major != 3 || version < OLDEST {
            return Err(RuntimeError::UnsupportedPython {
                given: given.to_string(),
            });
        }
        Ok(version)
    }

    /// `cp39`: the interpreter tag of wheels and the `cpython-39` of extension file names.
    pub fn cpython_tag(self) -> String {
        format!("cp{}{}", self.major, self.minor)
    }

    /// `python3.9`: the directory under `lib/` and the versioned interpreter name.
    pub fn lib_dir_name(self) -> String {
        format!("python{self}")
    }
}

impl fmt::Display for PythonVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The machine architectures st2 images exist for, or may: the official ones are amd64 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The spelling of wheel platform tags, uv's triples and extension file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

/// A glibc Linux platform, as a manylinux tag names it: wheels tagged for this glibc or an
/// older one run there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    pub arch: Arch,
    /// The glibc `(major, minor)` of the target OS.
    pub glibc: (u16, u16),
}

impl Platform {
    /// Parses uv's `--python-platform` spelling: `x86_64-manylinux_2_31`, or one of the legacy
    /// aliases `ARCH-manylinux2014` (glibc 2.17). Musl and non-Linux platforms are refused: st2
    /// images are glibc Linux.
    pub fn parse(given: &str) -> Result<Self, RuntimeError> {
        let bad = |reason: String| RuntimeError::BadPlatform {
            given: given.to_string(),
            reason,
        };
        let (arch, libc) = given
            .split_once('-')
            .ok_or_else(|| bad("not ARCH-LIBC".to_string()))?;
        let arch = match arch {
            "x86_64" => Arch::X86_64,
            "aarch64" => Arch::Aarch64,
            other => {
                return Err(bad(format!(
                    "architecture `{other}` is not one of x86_64, aarch64"
                )));
            }
        };
        let glibc = if libc == "manylinux2014" {
            (2, 17)
        } else if let Some(version) = libc.strip_prefix("manylinux_") {
            let parsed = version
                .split_once('_')
                .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)));
            match parsed {
                Some((2, minor)) if minor >= 17 => (2, minor),
                Some(_) => {
                    return Err(bad(format!(
                        "`{libc}` is not a glibc 2.17 or later (manylinux_2_17 .. manylinux_2_40)"
                    )));
                }
                None => {
                    return Err(bad(format!(
                        "`{libc}` is not manylinux_MAJOR_MINOR with numbers"
                    )));
                }
            }
        } else if libc.starts_with("musllinux") {
            return Err(bad(
                "musl platforms cannot run StackStorm's glibc images".to_string()
            ));
        } else {
            return Err(bad(format!(
                "`{libc}` is not a manylinux platform (st2 images are glibc Linux)"
            )));
        };
        Ok(Platform { arch, glibc })
    }

    /// uv's spelling, as `--python-platform` takes it.
    pub fn uv_triple(self) -> String {
        format!(
            "{}-manylinux_{}_{}",
            self.arch.as_str(),
            self.glibc.0,
            self.glibc.1
        )
    }

    /// The newest wheel platform tag that runs here, e.g. `manylinux_2_31_x86_64`.
    pub fn wheel_tag(self) -> String {
        format!(
            "manylinux_{}_{}_{}",
            self.glibc.0,
            self.glibc.1,
            self.arch.as_str()
        )
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uv_triple())
    }
}

/// Everything a virtualenv must match on the cluster, known without running its interpreter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRuntime {
    pub python: PythonVersion,
    /// The interpreter as virtualenv records it there: the target of the venv's `bin/python`.
    pub interpreter: PathBuf,
    pub platform: Platform,
    /// `home` in `pyvenv.cfg`: the directory virtualenv found the interpreter in.
    pub pyvenv_home: PathBuf,
    /// `include-system-site-packages`: st2's default `virtualenv_opts` is
    /// `--system-site-packages`.
    pub system_site_packages: bool,
    /// st2's own site-packages, when st2 adds it to pack virtualenvs with a `.pth` (3.9 and
    /// later).
    pub st2_site_packages: Option<PathBuf>,
}

impl TargetRuntime {
    /// `--target-python X.Y [--target-interpreter PATH] --target-platform TRIPLE`; the
    /// interpreter defaults to `/usr/bin/pythonX.Y`, as distributions install it.
    pub fn described(
        python: &str,
        interpreter: Option<&str>,
        platform: &str,
    ) -> Result<Self, RuntimeError> {
        let python = PythonVersion::parse(python)?;
        let platform = Platform::parse(platform)?;
        let interpreter = match interpreter {
            Some(given) => checked_interpreter(given)?,
            None => PathBuf::from(format!("/usr/bin/{}", python.lib_dir_name())),
        };
        let pyvenv_home = interpreter.parent().unwrap_or(Path::new("/")).to_path_buf();
        Ok(TargetRuntime {
            python,
            interpreter,
            platform,
            pyvenv_home,
            system_site_packages: true,
            st2_site_packages: None,
        })
    }

    /// How messages name the target: `CPython 3.9 on x86_64-manylinux_2_31`.
    pub fn describe(&self) -> String {
        format!("CPython {} on {}", self.python, self.platform)
    }
}

/// The interpreter must be an absolute, normal path: it is written verbatim into the symlink
/// and shebangs that the cluster follows.
fn checked_interpreter(given: &str) -> Result<PathBuf, RuntimeError> {
    let bad = |reason: &str| RuntimeError::BadInterpreter {
        given: given.to_string(),
        reason: reason.to_string(),
    };
    let path = Path::new(given);
    if !path.is_absolute() {
        return Err(bad("not an absolute path"));
    }
    if path.components().any(|c| {
        matches!(
            c,
            std::path::Component::ParentDir | std::path::Component::CurDir
        )
    }) || given.ends_with('/')
    {
        return Err(bad(
            "not a normal path to a file (no `.`, `..` or trailing `/`)",
        ));
    }
    if given.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace, which a shebang line cannot hold"));
    }
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_old_pythons_are_refused() {
        assert_eq!(
            PythonVersion::parse("3.9").unwrap(),
            PythonVersion { major: 3, minor: 9 }
        );
        assert_eq!(PythonVersion::parse("3.10").unwrap().cpython_tag(), "cp310");
        for old in ["2.7", "3.5", "4.0"] {
            let error = PythonVersion::parse(old).unwrap_err();
            assert!(
                matches!(error, RuntimeError::UnsupportedPython { .. }),
                "{old}"
            );
            assert!(error.to_string().contains("3.6 or later"), "{error}");
        }
        for bad in ["3", "3.9.1", "three.nine", "3.-1", "3.+9", ""] {
            let error = PythonVersion::parse(bad).unwrap_err();
            assert!(
                matches!(error, RuntimeError::BadPythonVersion { .. }),
                "{bad}"
            );
            assert!(error.to_string().contains(&format!("`{bad}`")), "{error}");
        }
    }

    #[test]
    fn platforms_parse_in_uvs_spelling() {
        let focal = Platform::parse("x86_64-manylinux_2_31").unwrap();
        assert_eq!(focal.glibc, (2, 31));
        assert_eq!(focal.uv_triple(), "x86_64-manylinux_2_31");
        assert_eq!(focal.wheel_tag(), "manylinux_2_31_x86_64");
        assert_eq!(
            Platform::parse("aarch64-manylinux2014")
                .unwrap()
                .uv_triple(),
            "aarch64-manylinux_2_17"
        );
        for bad in [
            "x86_64",
            "x86_64-manylinux_2",
            "x86_64-manylinux_2_x",
            "x86_64-manylinux_2_5",
            "x86_64-musllinux_1_2",
            "i686-manylinux_2_31",
            "x86_64-unknown-linux-gnu",
            "manylinux_2_31_x86_64",
        ] {
            let error = Platform::parse(bad).unwrap_err();
            assert!(matches!(error, RuntimeError::BadPlatform { .. }), "{bad}");
            assert!(
                error.to_string().contains("x86_64-manylinux_2_31"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_described_runtime_defaults_to_the_distributions_interpreter() {
        let target = TargetRuntime::described("3.9", None, "x86_64-manylinux_2_31").unwrap();
        assert_eq!(target.interpreter, Path::new("/usr/bin/python3.9"));
        assert_eq!(target.pyvenv_home, Path::new("/usr/bin"));
        assert_eq!(target.describe(), "CPython 3.9 on x86_64-manylinux_2_31");
        let custom = TargetRuntime::described(
            "3.8",
            Some("/opt/py/bin/python3.8"),
            "x86_64-manylinux_2_31",
        )
        .unwrap();
        assert_eq!(custom.pyvenv_home, Path::new("/opt/py/bin"));
        for bad in [
            "python3.8",
            "/usr/bin/../bin/python3",
            "/usr/bin/",
            "/opt/my py/python",
        ] {
            let error =
                TargetRuntime::described("3.8", Some(bad), "x86_64-manylinux_2_31").unwrap_err();
            assert!(
                matches!(error, RuntimeError::BadInterpreter { .. }),
                "{bad}"
            );
        }
    }
}
