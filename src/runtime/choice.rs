//! Which runtime the user asked for, from the runtime options of `st2pack build`, `st2pack
//! install` and `st2-pack-install`, with the combinations that make no sense refused before
//! anything is fetched.

use std::path::PathBuf;

use super::RuntimeError;
use super::presets::preset;
use super::target::TargetRuntime;

/// The runtime options as given.
#[derive(Debug, Clone, Default)]
pub struct RuntimeArgs {
    /// `--runtime NAME`: a preset, or `host`.
    pub runtime: Option<String>,
    /// `--runtime-image REF`: a registry reference or `oci:DIR[:TAG]`.
    pub runtime_image: Option<String>,
    /// `--target-python X.Y`.
    pub target_python: Option<String>,
    /// `--target-interpreter PATH`.
    pub target_interpreter: Option<String>,
    /// `--target-platform TRIPLE`.
    pub target_platform: Option<String>,
}

/// What the virtualenvs are built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeChoice {
    /// `--runtime host`: the build machine's interpreter, as a native build.
    Host,
    /// A preset or a described runtime: built without its interpreter.
    Target(TargetRuntime),
    /// `--runtime-image`: the image's own interpreter (or `--target-interpreter` in it).
    Image {
        reference: String,
        interpreter: Option<PathBuf>,
    },
}

/// What `--runtime host` is spelled as.
pub const HOST: &str = "host";

impl RuntimeArgs {
    /// The runtime asked for, or `None` when no runtime option was given (the caller applies
    /// the default: native inside an st2 image, else the chart's default preset).
    pub fn choose(&self) -> Result<Option<RuntimeChoice>, RuntimeError> {
        let conflict = |first: &str, second: &str| RuntimeError::ConflictingRuntimeOptions {
            first: first.to_string(),
            second: second.to_string(),
        };
        let described = self.target_python.is_some();
        match (&self.runtime, &self.runtime_image) {
            (Some(_), Some(_)) => return Err(conflict("--runtime", "--runtime-image")),
            (Some(_), None) if described => {
                return Err(conflict("--runtime", "--target-python"));
            }
            (None, Some(_)) if described => {
                return Err(conflict("--runtime-image", "--target-python"));
            }
            _ => {}
        }
        if let Some(name) = &self.runtime {
            if let Some(option) = self.target_option_given() {
                return Err(conflict("--runtime", option));
            }
            if name == HOST {
                return Ok(Some(RuntimeChoice::Host));
            }
            return Ok(Some(RuntimeChoice::Target(preset(name)?.target())));
        }
        if let Some(reference) = &self.runtime_image {
            if self.target_platform.is_some() {
                return Err(conflict("--runtime-image", "--target-platform"));
            }
            return Ok(Some(RuntimeChoice::Image {
                reference: reference.clone(),
                interpreter: self.target_interpreter.as_ref().map(PathBuf::from),
            }));
        }
        match (&self.target_python, &self.target_platform) {
            (Some(python), Some(platform)) => Ok(Some(RuntimeChoice::Target(
                TargetRuntime::described(python, self.target_interpreter.as_deref(), platform)?,
            ))),
            (Some(_), None) => Err(RuntimeError::MissingRuntimeOption {
                given: "--target-python".to_string(),
                missing: "--target-platform TRIPLE (for example x86_64-manylinux_2_31)".to_string(),
            }),
            (None, _) => match self.target_option_given() {
                Some(option) => Err(RuntimeError::MissingRuntimeOption {
                    given: option.to_string(),
                    missing: "--target-python X.Y".to_string(),
                }),
                None => Ok(None),
            },
        }
    }

    fn target_option_given(&self) -> Option<&'static str> {
        if self.target_interpreter.is_some() {
            Some("--target-interpreter")
        } else if self.target_platform.is_some() {
            Some("--target-platform")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> RuntimeArgs {
        let mut args = RuntimeArgs::default();
        for (name, value) in pairs {
            let value = Some(value.to_string());
            match *name {
                "runtime" => args.runtime = value,
                "image" => args.runtime_image = value,
                "python" => args.target_python = value,
                "interpreter" => args.target_interpreter = value,
                "platform" => args.target_platform = value,
                _ => unreachable!(),
            }
        }
        args
    }

    #[test]
    fn each_way_of_naming_a_runtime() {
        assert_eq!(args(&[]).choose().unwrap(), None);
        assert_eq!(
            args(&[("runtime", "host")]).choose().unwrap(),
            Some(RuntimeChoice::Host)
        );
        let Some(RuntimeChoice::Target(focal)) = args(&[("runtime", "st2-3.8")]).choose().unwrap()
        else {
            panic!("a preset is a target runtime");
        };
        assert_eq!(focal.interpreter, PathBuf::from("/usr/bin/python3.8"));
        let described = args(&[("python", "3.9"), ("platform", "x86_64-manylinux_2_31")])
            .choose()
            .unwrap();
        assert!(matches!(described, Some(RuntimeChoice::Target(t)) if t.python.minor == 9));
        assert_eq!(
            args(&[
                ("image", "oci:/images/st2:3.8"),
                ("interpreter", "/usr/bin/python3.8")
            ])
            .choose()
            .unwrap(),
            Some(RuntimeChoice::Image {
                reference: "oci:/images/st2:3.8".to_string(),
                interpreter: Some(PathBuf::from("/usr/bin/python3.8")),
            })
        );
    }

    #[test]
    fn contradictory_or_incomplete_options_are_refused() {
        for (given, needles) in [
            (
                vec![("runtime", "st2-3.8"), ("image", "st2:3.8")],
                ["--runtime", "--runtime-image"],
            ),
            (
                vec![
                    ("runtime", "st2-3.8"),
                    ("platform", "x86_64-manylinux_2_31"),
                ],
                ["--runtime", "--target-platform"],
            ),
            (
                vec![("image", "st2:3.8"), ("python", "3.8")],
                ["--runtime-image", "--target-python"],
            ),
            (
                vec![("python", "3.9")],
                ["--target-python", "--target-platform"],
            ),
            (
                vec![("platform", "x86_64-manylinux_2_31")],
                ["--target-platform", "--target-python"],
            ),
        ] {
            let error = args(&given).choose().unwrap_err();
            let message = error.to_string();
            for needle in needles {
                assert!(message.contains(needle), "{needle}: {message}");
            }
            assert_eq!(error.exit_code(), 2, "{message}");
        }
        assert!(matches!(
            args(&[("runtime", "st2-4.0")]).choose().unwrap_err(),
            RuntimeError::UnknownPreset { .. }
        ));
    }
}
