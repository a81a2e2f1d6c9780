//! The runtime flags shared by `st2pack build`, `st2pack install` and `st2-pack-install`: which
//! cluster runtime the virtualenvs are built for, turned into what the install engine takes.
//!
//! No runtime option means: inside an st2 image, its own interpreter (a native build, as
//! upstream); for `st2pack build` anywhere else, the chart's default runtime, said on stderr so
//! that nobody ships a virtualenv for the build machine without knowing.

use std::path::{Path, PathBuf};

use clap::Args;

use super::registry_args::RegistryArgs;
use super::{Failure, usage};
use crate::build::runtime_image::{ImageRuntime, load_runtime_image};
use crate::cache::Cache;
use crate::install::InstallOptions;
use crate::install::venv::{self, TargetBuild, VenvRuntime};
use crate::pack::pin::RuntimePin;
use crate::registry::{Reference, RegistryClient};
use crate::runtime::presets::{self, DEFAULT};
use crate::runtime::{RuntimeArgs, RuntimeChoice, TargetRuntime};

#[derive(Debug, Clone, Args)]
pub struct RuntimeFlags {
    /// The cluster runtime to build the virtualenvs for: st2-3.8 (the chart's default: CPython
    /// 3.8 on Ubuntu focal), st2-3.9 (CPython 3.10 on jammy), or host (this machine's
    /// --python; the image then only runs where that interpreter exists at that path)
    /// [default: native inside an st2 image; for `build`, st2-3.8 elsewhere]
    #[arg(long, value_name = "NAME")]
    pub runtime: Option<String>,

    /// The exact runtime: an st2 image (a registry reference or oci:DIR[:TAG]) whose own
    /// interpreter builds the virtualenvs here, without Docker.
    #[arg(long, value_name = "REF")]
    pub runtime_image: Option<String>,

    /// Describe the runtime instead: its Python as MAJOR.MINOR (with --target-platform).
    #[arg(long, value_name = "X.Y")]
    pub target_python: Option<String>,

    /// The runtime's interpreter path on the cluster [default: /usr/bin/pythonX.Y; in a
    /// --runtime-image, st2's interpreter, else /usr/bin/python3]
    #[arg(long, value_name = "PATH")]
    pub target_interpreter: Option<String>,

    /// The runtime's platform in uv's spelling, e.g. x86_64-manylinux_2_31 (glibc 2.31, focal).
    #[arg(long, value_name = "TRIPLE")]
    pub target_platform: Option<String>,

    /// A CPython of the target's version that runs here, to compile the bytecode of a preset or
    /// described runtime [default: one `uv python find X.Y` finds; none: no bytecode]
    #[arg(long, value_name = "PATH")]
    pub bytecode_python: Option<PathBuf>,
}

/// What no runtime option means for a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeDefault {
    /// The interpreter the install would use anyway: installs onto this machine.
    Native,
    /// The chart's default runtime, outside an st2 image: image builds.
    ChartDefault,
}

/// The runtime chosen, and what to tell the user about it.
#[derive(Debug)]
pub struct ChosenRuntime {
    pub runtime: VenvRuntime,
    /// A note or warning for stderr, said once before the work starts.
    pub message: Option<String>,
}

/// st2's own virtualenv: its presence means we run inside an st2 image (or installation).
const ST2_PYTHON: &str = "/opt/stackstorm/st2/bin/python";

impl RuntimeFlags {
    fn args(&self) -> RuntimeArgs {
        RuntimeArgs {
            runtime: self.runtime.clone(),
            runtime_image: self.runtime_image.clone(),
            target_python: self.target_python.clone(),
            target_interpreter: self.target_interpreter.clone(),
            target_platform: self.target_platform.clone(),
        }
    }

    /// `--runtime-image` when it names a registry image (for the registry flags to apply to).
    pub fn registry_reference(&self) -> Option<Reference> {
        let given = self.runtime_image.as_deref()?;
        (!given.starts_with("oci:"))
            .then(|| Reference::parse(given).ok())
            .flatten()
    }

    /// A client for `--runtime-image`, with the command's registry flags (`install` and `lock`
    /// name no other registry).
    pub fn registry_client(&self, flags: &RegistryArgs) -> Result<RegistryClient, Failure> {
        let reference = self.registry_reference();
        flags.client(&Vec::from_iter(&reference)).map_err(usage)
    }

    /// True when any option names a runtime.
    pub fn given(&self) -> bool {
        let args = self.args();
        args.runtime.is_some()
            || args.runtime_image.is_some()
            || args.target_python.is_some()
            || args.target_interpreter.is_some()
            || args.target_platform.is_some()
    }

    /// Resolves the flags (all checked before anything is fetched) for a command whose default
    /// is `default`, `python` being the interpreter a native build uses. A runtime image is
    /// left to the caller, which pulls it: see [`ChosenRuntime`] for the others.
    pub async fn choose(&self, default: RuntimeDefault, python: &Path) -> Result<Choice, Failure> {
        let bad = |e: crate::runtime::RuntimeError| (e.exit_code(), e.to_string());
        let chosen = self.args().choose().map_err(bad)?;
        let inside_st2 = Path::new(ST2_PYTHON).exists();
        let chosen = match chosen {
            Some(chosen) => chosen,
            None if default == RuntimeDefault::ChartDefault && !inside_st2 => {
                let preset = presets::preset(DEFAULT).map_err(bad)?;
                let target = self.preset_build(preset).await?;
                let message = format!(
                    "note: building the virtualenvs for {DEFAULT}, the chart's default runtime \
                     ({}: CPython {} at {} on {}); choose the cluster's with --runtime, \
                     --runtime-image or --target-python",
                    preset.image, target.pin.python, target.pin.interpreter, target.target.platform,
                );
                return Ok(Choice::Ready(Box::new(ChosenRuntime {
                    runtime: VenvRuntime::Target(Box::new(target)),
                    message: Some(message),
                })));
            }
            None => {
                self.no_bytecode_python("a native build")?;
                return Ok(Choice::Ready(Box::new(ChosenRuntime {
                    runtime: VenvRuntime::Native,
                    message: None,
                })));
            }
        };
        match chosen {
            RuntimeChoice::Host => {
                self.no_bytecode_python("--runtime host")?;
                let message = format!(
                    "warning: --runtime host: the virtualenvs are built for this machine's \
                     interpreter `{}`; they only run where that interpreter exists at that path \
                     (st2's runtime in the cluster is another)",
                    python.display()
                );
                Ok(Choice::Ready(Box::new(ChosenRuntime {
                    runtime: VenvRuntime::Native,
                    message: (default == RuntimeDefault::ChartDefault).then_some(message),
                })))
            }
            RuntimeChoice::Target(target) => {
                let build = match self.runtime.as_deref() {
                    Some(name) => {
                        self.preset_build(presets::preset(name).map_err(bad)?)
                            .await?
                    }
                    None => self.described_build(target).await?,
                };
                // Without bytecode, each virtualenv's warning says what that costs.
                Ok(Choice::Ready(Box::new(ChosenRuntime {
                    runtime: VenvRuntime::Target(Box::new(build)),
                    message: None,
                })))
            }
            RuntimeChoice::Image {
                reference,
                interpreter,
            } => {
                self.no_bytecode_python("--runtime-image")?;
                Ok(Choice::Image {
                    reference,
                    interpreter,
                })
            }
        }
    }

    fn no_bytecode_python(&self, runtime: &str) -> Result<(), Failure> {
        match &self.bytecode_python {
            Some(given) => Err(usage(format!(
                "--bytecode-python {}: only a preset (--runtime st2-X.Y) or a described runtime \
                 (--target-python) takes it; with {runtime} the runtime's own interpreter \
                 compiles the bytecode, so leave it out",
                given.display()
            ))),
            None => Ok(()),
        }
    }

    async fn preset_build(&self, preset: &presets::Preset) -> Result<TargetBuild, Failure> {
        let mut build = self.described_build(preset.target()).await?;
        build.pin.kind = "preset".to_string();
        build.pin.name = Some(preset.name.to_string());
        Ok(build)
    }

    async fn described_build(&self, target: TargetRuntime) -> Result<TargetBuild, Failure> {
        let bytecode_python = self.bytecode_python_for(&target).await?;
        Ok(TargetBuild {
            pin: RuntimePin {
                kind: "described".to_string(),
                python: target.python.to_string(),
                interpreter: target.interpreter.to_string_lossy().into_owned(),
                platform: Some(target.platform.uv_triple()),
                ..Default::default()
            },
            version: target.python.to_string(),
            bytecode_python,
            uv_python: None,
            forbidden_paths: Vec::new(),
            target,
        })
    }

    /// `--bytecode-python`, checked to be of the target's version; else what `uv python find`
    /// finds of that version; else none.
    async fn bytecode_python_for(
        &self,
        target: &TargetRuntime,
    ) -> Result<Option<PathBuf>, Failure> {
        let wanted = (
            u32::from(target.python.major),
            u32::from(target.python.minor),
        );
        if let Some(given) = &self.bytecode_python {
            let info = venv::probe_python(given)
                .await
                .map_err(|e| usage(format!("--bytecode-python: {e}")))?;
            if (info.major, info.minor) != wanted {
                return Err(usage(format!(
                    "--bytecode-python {}: it is Python {}, but the target is Python {}; give a \
                     CPython {} interpreter (its bytecode is only loaded by that version)",
                    given.display(),
                    info.version,
                    target.python,
                    target.python
                )));
            }
            // As given: a launcher script runs another program than its own `sys.executable`.
            let given = std::path::absolute(given).unwrap_or_else(|_| given.clone());
            return Ok(Some(given));
        }
        let Some(found) = uv_python_find(&target.python.to_string()).await else {
            return Ok(None);
        };
        Ok(venv::probe_python(&found)
            .await
            .ok()
            .filter(|info| (info.major, info.minor) == wanted)
            .map(|info| info.path))
    }
}

/// Sets the runtime of `options` from the flags, says on stderr what the user should know of
/// it, and returns the runtime image in use, which must live as long as the install (its
/// launcher is a temporary file; it holds `cache`'s lock on the unpacked image).
pub async fn apply(
    flags: &RuntimeFlags,
    options: &mut InstallOptions,
    default: RuntimeDefault,
    registry: &RegistryClient,
    cache: &Cache,
) -> Result<Option<ImageRuntime>, Failure> {
    let (mut chosen, image) = match flags.choose(default, &options.python).await? {
        Choice::Ready(chosen) => (*chosen, None),
        Choice::Image {
            reference,
            interpreter,
        } => {
            let image = load_runtime_image(&reference, interpreter.as_deref(), registry, cache)
                .await
                .map_err(|e| (e.exit_code(), e.to_string()))?;
            let build = image_build(&image);
            let message = format!(
                "note: building the virtualenvs with the runtime image {} ({}): {}",
                image.image.reference,
                image.image.digest,
                build.pin.describe()
            );
            let chosen = ChosenRuntime {
                runtime: VenvRuntime::Target(Box::new(build)),
                message: Some(message),
            };
            (chosen, Some(image))
        }
    };
    if let VenvRuntime::Target(build) = &chosen.runtime {
        // st2's default `virtualenv_opts` is --system-site-packages.
        options.system_site_packages |= build.target.system_site_packages;
        if image.is_none() && is_here(&build.target).await {
            options.python = build.target.interpreter.clone();
            chosen.message = Some(format!(
                "note: {} is the runtime's own interpreter ({}): building natively",
                build.target.interpreter.display(),
                build.pin.describe()
            ));
            chosen.runtime = VenvRuntime::Native;
        }
    }
    if let Some(message) = &chosen.message {
        eprintln!("{message}");
    }
    options.runtime = chosen.runtime;
    Ok(image)
}

/// The virtualenvs of a runtime image are built for its interpreter's facts, by that
/// interpreter: uv builds source distributions with it and it compiles the bytecode.
fn image_build(image: &ImageRuntime) -> TargetBuild {
    let target = image.target.clone();
    let mut forbidden_paths = vec![image.image.root.clone()];
    forbidden_paths.extend(image.launcher.parent().map(Path::to_path_buf));
    TargetBuild {
        pin: RuntimePin {
            kind: "image".to_string(),
            name: None,
            python: target.python.to_string(),
            interpreter: target.interpreter.to_string_lossy().into_owned(),
            platform: Some(target.platform.uv_triple()),
            image: Some(image.image.reference.clone()),
            image_digest: Some(image.image.digest.clone()),
        },
        version: image.full_version.clone(),
        bytecode_python: Some(image.launcher.clone()),
        uv_python: Some(image.launcher.clone()),
        forbidden_paths,
        target,
    }
}

/// Whether the target's interpreter is this machine's: the same version at the same path, on a
/// glibc no newer than the target's (else wheels for this machine's glibc could be chosen).
async fn is_here(target: &TargetRuntime) -> bool {
    let Ok(python) = venv::probe_python(&target.interpreter).await else {
        return false;
    };
    let same_version = (python.major, python.minor)
        == (
            u32::from(target.python.major),
            u32::from(target.python.minor),
        );
    if !same_version || python.path != target.interpreter {
        return false;
    }
    let output = tokio::process::Command::new(&target.interpreter)
        .args(["-I", "-c", "import platform; print(platform.libc_ver()[1])"])
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    let glibc = output.ok().and_then(|output| {
        let text = String::from_utf8(output.stdout).ok()?;
        let (major, minor) = text.trim().split_once('.')?;
        Some((major.parse::<u16>().ok()?, minor.parse::<u16>().ok()?))
    });
    glibc.is_some_and(|glibc| glibc <= target.platform.glibc)
}

/// What [`RuntimeFlags::choose`] decided.
#[derive(Debug)]
pub enum Choice {
    Ready(Box<ChosenRuntime>),
    /// `--runtime-image`: the caller pulls it and makes the runtime from it.
    Image {
        reference: String,
        interpreter: Option<PathBuf>,
    },
}

/// An interpreter of `version` on this machine, as uv finds them (PATH, pyenv, uv's own), never
/// downloaded.
async fn uv_python_find(version: &str) -> Option<PathBuf> {
    let uv = venv::find_uv()?;
    let output = tokio::process::Command::new(uv)
        .args(["python", "find", "--no-project", version])
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env_remove("VIRTUAL_ENV")
        .env_remove("UV_PYTHON")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    let found = String::from_utf8(output.stdout).ok()?;
    let found = found.trim();
    (output.status.success() && found.starts_with('/')).then(|| PathBuf::from(found))
}
