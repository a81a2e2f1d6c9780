//! The one error type of the runtime targets.
//!
//! Every message names what the user gave (the preset, the version, the platform triple, the
//! requirement) and says what to do next. Installer failures keep uv's own last lines, because
//! that is where the real reason is.

use std::io;
use std::path::PathBuf;

/// Why a runtime could not be described, or a virtualenv could not be made for it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// `--runtime NAME` names no preset.
    #[error(
        "unknown runtime `{given}`; known runtimes: {known}. Or describe the cluster's runtime \
         with --target-python X.Y --target-platform TRIPLE"
    )]
    UnknownPreset { given: String, known: String },

    /// `--target-python` is not `MAJOR.MINOR`.
    #[error(
        "--target-python `{given}`: {reason}; give the cluster's Python as MAJOR.MINOR, for \
         example 3.8"
    )]
    BadPythonVersion { given: String, reason: String },

    /// `--target-python` names a Python that pack virtualenvs cannot use.
    #[error(
        "--target-python `{given}`: Python {given} is not supported (pack virtualenvs need \
         Python 3.6 or later, as StackStorm does); give the Python of the cluster's st2 image, \
         for example 3.8"
    )]
    UnsupportedPython { given: String },

    /// `--target-platform` is not a triple in uv's spelling that we can target.
    #[error(
        "--target-platform `{given}`: {reason}; give ARCH-manylinux_GLIBCMAJOR_GLIBCMINOR in \
         uv's spelling, for example x86_64-manylinux_2_31 (Ubuntu focal, st2 3.8) or \
         x86_64-manylinux_2_35 (Ubuntu jammy)"
    )]
    BadPlatform { given: String, reason: String },

    /// `--target-interpreter` cannot be the interpreter of a virtualenv on the cluster.
    #[error(
        "--target-interpreter `{given}`: {reason}; give the absolute path of the interpreter \
         on the cluster, for example /usr/bin/python3.8"
    )]
    BadInterpreter { given: String, reason: String },

    /// The runtime image has no interpreter where we looked.
    #[error(
        "{}: the runtime image has no Python interpreter at {looked_for}; use an image with \
         Python 3 (a stackstorm/st2 image), or name its interpreter with --target-interpreter \
         PATH",
        root.display()
    )]
    ImageHasNoPython { root: PathBuf, looked_for: String },

    /// The runtime image cannot run its interpreter here: no x86_64 glibc loader.
    #[error(
        "{}: the runtime image has no dynamic loader at /lib64/ld-linux-x86-64.so.2, so its \
         interpreter cannot run on this machine; use an x86_64 glibc image (stackstorm/st2 is \
         one), or describe the runtime with --target-python and --target-platform",
        root.display()
    )]
    ImageHasNoLoader { root: PathBuf },

    /// Two runtime options that name different runtimes.
    #[error(
        "{first} and {second} cannot be used together: each names the runtime; give one \
         (--runtime NAME, --runtime-image REF, or --target-python X.Y --target-platform TRIPLE)"
    )]
    ConflictingRuntimeOptions { first: String, second: String },

    /// A runtime option that needs another.
    #[error("{given} also needs {missing}")]
    MissingRuntimeOption { given: String, missing: String },

    /// A file or directory of the virtualenv being made could not be read or written.
    #[error("{}: could not {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },

    /// The virtualenv directory is there already; this never overwrites one.
    #[error(
        "{}: already exists; remove it, or choose another directory for the virtualenv",
        path.display()
    )]
    DestinationExists { path: PathBuf },

    /// uv could not be started.
    #[error(
        "could not run uv (`{}`): {source}; install uv (https://docs.astral.sh/uv/) or put it \
         on PATH",
        uv.display()
    )]
    UvNotRunnable {
        uv: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A requirement has no wheel for the target and building it here would compile it for the
    /// build machine's Python.
    #[error(
        "`{package}` {version} has no wheel for the target {target}, and building it on this \
         machine would compile it for this machine's Python, not the cluster's. Put a wheel \
         built for {target} in --wheelhouse, pin a version that publishes one, or build with \
         --runtime-image so the cluster's own interpreter compiles it.\nuv said:\n{detail}"
    )]
    NeedsCompiling {
        package: String,
        version: String,
        target: String,
        detail: String,
    },

    /// uv failed for another reason (a missing distribution, an unreachable index...).
    #[error(
        "installing {requirements} for the target {target} failed; check the requirements and \
         the index or --wheelhouse they install from, then retry.\nuv said:\n{detail}"
    )]
    InstallFailed {
        requirements: String,
        target: String,
        detail: String,
    },

    /// An installed extension module or wheel is for another Python or platform.
    #[error(
        "{}: built for {found}, but the target is {target}; it would fail to import on the \
         cluster, so nothing was installed. Put a wheel built for {target} in --wheelhouse, or \
         build with --runtime-image",
        file.display()
    )]
    ForeignBinary {
        file: PathBuf,
        found: String,
        target: String,
    },

    /// A file of the virtualenv names a path of the build machine.
    #[error(
        "{}: names `{leaked}`, a path of the build machine that does not exist on the cluster; \
         nothing was installed. Report this with the requirement that installed the file",
        file.display()
    )]
    BuildPathLeaked { file: PathBuf, leaked: String },
}

impl RuntimeError {
    /// 2 for bad input (an option the user can correct), 1 for a failed operation.
    pub fn exit_code(&self) -> i32 {
        match self {
            RuntimeError::UnknownPreset { .. }
            | RuntimeError::BadPythonVersion { .. }
            | RuntimeError::UnsupportedPython { .. }
            | RuntimeError::BadPlatform { .. }
            | RuntimeError::BadInterpreter { .. }
            | RuntimeError::ConflictingRuntimeOptions { .. }
            | RuntimeError::MissingRuntimeOption { .. }
            | RuntimeError::DestinationExists { .. }
            | RuntimeError::ImageHasNoPython { .. }
            | RuntimeError::ImageHasNoLoader { .. } => 2,
            _ => 1,
        }
    }

    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| RuntimeError::Io {
            path,
            action,
            source,
        }
    }
}
