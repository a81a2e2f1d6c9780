//! The runtimes of the official st2 images, as `--runtime NAME` names them.
//!
//! These are facts about images we do not build, gathered from StackStorm's public repositories
//! (st2, st2-packages, st2-dockerfiles, stackstorm-k8s) by reading them, not by pulling the
//! images. They live here, and only here, each with its source and how sure we are, so that a
//! wrong one is corrected in one place. `--runtime-image` is the exact alternative.

use std::path::PathBuf;

use super::RuntimeError;
use super::target::{Arch, Platform, PythonVersion, TargetRuntime};

/// One official st2 runtime.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// What `--runtime` takes.
    pub name: &'static str,
    /// The st2 image it describes.
    pub image: &'static str,
    /// CPython of the image's OS. Source: st2-dockerfiles (focal for 3.8, jammy for 3.9),
    /// st2-packages' python3.X dependencies. [high]
    pub python: PythonVersion,
    /// The interpreter a pack virtualenv's `bin/python` links to: st2 makes pack venvs with its
    /// own `/opt/stackstorm/st2/bin/python` (a `--copies` venv), which virtualenv resolves to the
    /// system interpreter. Source: st2 `virtualenvs.py`, virtualenv's discovery. [medium]
    pub interpreter: &'static str,
    /// `home` in the pack venv's `pyvenv.cfg`: the interpreter's directory. The old virtualenv
    /// (20.4) of st2 3.8 may write `/usr`; Python only uses it to find the standard library,
    /// which both reach. [medium]
    pub pyvenv_home: &'static str,
    /// The OS glibc as a manylinux platform: focal 2.31, jammy 2.35. amd64 only. [high]
    pub glibc: (u16, u16),
    /// Whether st2 adds `zzzzzzzzzz__st2__.pth` (its site-packages) to pack venvs: 3.9 and
    /// later only. Source: st2 CHANGELOG and `virtualenvs.py`. [high]
    pub writes_st2_pth: bool,
    /// st2's site-packages: `/opt/stackstorm/st2/lib/pythonX.Y/site-packages`. [high]
    pub st2_site_packages: &'static str,
}

/// The chart's default runtime: stackstorm-k8s 1.1.0's `appVersion` is 3.8.
pub const DEFAULT: &str = "st2-3.8";

/// Every preset `--runtime` knows.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "st2-3.8",
        image: "stackstorm/st2:3.8 (Ubuntu focal)",
        python: PythonVersion { major: 3, minor: 8 },
        interpreter: "/usr/bin/python3.8",
        pyvenv_home: "/usr/bin",
        glibc: (2, 31),
        writes_st2_pth: false,
        st2_site_packages: "/opt/stackstorm/st2/lib/python3.8/site-packages",
    },
    Preset {
        name: "st2-3.9",
        image: "stackstorm/st2:3.9 (Ubuntu jammy)",
        python: PythonVersion {
            major: 3,
            minor: 10,
        },
        interpreter: "/usr/bin/python3.10",
        pyvenv_home: "/usr/bin",
        glibc: (2, 35),
        writes_st2_pth: true,
        st2_site_packages: "/opt/stackstorm/st2/lib/python3.10/site-packages",
    },
];

/// The preset `--runtime NAME` names.
pub fn preset(name: &str) -> Result<&'static Preset, RuntimeError> {
    PRESETS
        .iter()
        .find(|preset| preset.name == name)
        .ok_or_else(|| RuntimeError::UnknownPreset {
            given: name.to_string(),
            known: PRESETS
                .iter()
                .map(|preset| preset.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl Preset {
    /// The runtime a pack virtualenv must match in this image.
    pub fn target(&self) -> TargetRuntime {
        TargetRuntime {
            python: self.python,
            interpreter: PathBuf::from(self.interpreter),
            platform: Platform {
                arch: Arch::X86_64,
                glibc: self.glibc,
            },
            pyvenv_home: PathBuf::from(self.pyvenv_home),
            system_site_packages: true,
            st2_site_packages: self
                .writes_st2_pth
                .then(|| PathBuf::from(self.st2_site_packages)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_presets_are_consistent_with_themselves() {
        for preset in PRESETS {
            let target = preset.target();
            let version = preset.python.to_string();
            assert!(preset.interpreter.ends_with(&format!("python{version}")));
            assert!(preset.interpreter.starts_with(preset.pyvenv_home));
            assert!(
                preset
                    .st2_site_packages
                    .contains(&format!("/lib/python{version}/"))
            );
            assert_eq!(target.platform.arch, Arch::X86_64);
        }
        assert!(preset(DEFAULT).is_ok());
    }

    #[test]
    fn st2_3_8_is_focal_and_3_9_is_jammy() {
        let focal = preset("st2-3.8").unwrap().target();
        assert_eq!(focal.platform.uv_triple(), "x86_64-manylinux_2_31");
        assert_eq!(focal.python.to_string(), "3.8");
        assert_eq!(focal.st2_site_packages, None);
        let jammy = preset("st2-3.9").unwrap().target();
        assert_eq!(jammy.platform.uv_triple(), "x86_64-manylinux_2_35");
        assert_eq!(jammy.python.to_string(), "3.10");
        assert!(jammy.st2_site_packages.is_some());
    }

    #[test]
    fn an_unknown_preset_lists_the_known_ones() {
        let error = preset("st2-3.7").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`st2-3.7`"), "{message}");
        assert!(message.contains("st2-3.8, st2-3.9"), "{message}");
        assert_eq!(error.exit_code(), 2);
    }
}
