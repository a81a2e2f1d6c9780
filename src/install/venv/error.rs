//! The one error type of the virtualenv engine.
//!
//! Every message names what the user gave (the interpreter, the requirements file, the target
//! directory) and says what to do next. Installer failures carry the installer's own last lines of
//! output, because that is where the real reason (a missing distribution, a compiler error) is; the
//! caller scrubs credentials from it before showing it.

use std::io;
use std::path::PathBuf;

/// Why a virtualenv could not be probed, built, compiled or cached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VenvError {
    /// The interpreter given with `--python` does not exist.
    #[error(
        "Python interpreter `{given}` {detail}; install Python 3 or pass --python PATH with the \
         interpreter StackStorm uses (for example /opt/stackstorm/st2/bin/python)"
    )]
    PythonMissing { given: String, detail: String },

    /// The interpreter exists but could not be started.
    #[error(
        "could not run Python interpreter `{given}`: {source}; pass --python PATH with an \
         executable Python 3 interpreter"
    )]
    PythonNotRunnable {
        given: String,
        #[source]
        source: io::Error,
    },

    /// The program ran but is not a Python interpreter we understand.
    #[error(
        "`{given}` does not look like a Python interpreter ({detail}); pass --python PATH with a \
         Python 3 interpreter"
    )]
    NotAPython { given: String, detail: String },

    /// The interpreter is too old for pack virtualenvs.
    #[error(
        "`{given}` is Python {version}, but pack virtualenvs need Python 3.6 or newer; pass \
         --python PATH with the Python 3 interpreter StackStorm uses"
    )]
    UnsupportedPython { given: String, version: String },

    /// `--installer uv` was asked for but there is no `uv` on PATH.
    #[error(
        "--installer uv was requested but `uv` was not found on PATH; install it (`pip install \
         uv`) or use --installer pip"
    )]
    UvNotFound,

    /// A virtualenv for another runtime than this machine's is made by uv, which is missing.
    #[error(
        "building virtualenvs for {target} needs uv, which resolves and installs for another \
         Python and platform, but `uv` was not found on PATH (or --installer pip was given); \
         install it (`pip install uv`)"
    )]
    TargetNeedsUv { target: String },

    /// A virtualenv for a target runtime could not be made; the message names why.
    #[error("{source}")]
    Runtime {
        #[from]
        source: crate::runtime::RuntimeError,
    },

    /// An installer (uv, pip, `python -m venv`) ran and failed.
    #[error(
        "`{command}` failed ({status}) while building the virtualenv for {final_dir}:\n{output}\n\
         {hint}"
    )]
    Installer {
        /// Program and subcommand, e.g. `uv pip install`.
        command: String,
        /// The exit status, e.g. `exit status: 1`.
        status: String,
        /// Where the virtualenv is meant to be used.
        final_dir: PathBuf,
        /// The last lines of the installer's stdout and stderr.
        output: String,
        /// What to do about it.
        hint: &'static str,
    },

    /// A child program could not be started at all.
    #[error("could not start `{program}`: {source}; check that it is installed and executable")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },

    /// The pack's requirements file could not be read.
    #[error("could not read requirements file {path}: {source}; check the pack's requirements.txt")]
    Requirements {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The pack's requirements ask for what a pack may not (see `pack::requirements::Policy`).
    #[error(
        "the pack's requirements ask the installer for what a pack may not, so nothing was \
         installed for it:\n  {}",
        problems.join("\n  ")
    )]
    RefusedRequirements {
        /// Each as `file:line: what and why`.
        problems: Vec<String>,
    },

    /// The wheelhouse directory could not be listed.
    #[error(
        "could not read wheelhouse {path}: {source}; pass --wheelhouse DIR with a directory of \
         .whl files"
    )]
    Wheelhouse {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A path argument cannot be used (relative, not UTF-8, shell-unsafe characters, not empty).
    #[error("cannot use {what} {path}: {reason}")]
    InvalidPath {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },

    /// A filesystem operation failed.
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Byte-compiling failed as a whole (individual files that do not compile are warnings).
    #[error("compiling Python bytecode under {dir} with {python} failed: {detail}")]
    Compile {
        python: PathBuf,
        dir: PathBuf,
        detail: String,
    },
}

impl VenvError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        VenvError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
