//! Lock files: a build that is the same next month and on another machine.
//!
//! `st2pack lock` resolves every pack spec, dependencies included, to the commit (or, for a
//! directory, the content) it names today, and every requirement of every pack's virtualenv,
//! for the runtime the build targets, to one version and the hashes of the files allowed to
//! install it. A build with `--locked` fetches those commits whatever the tags say now, and
//! installs exactly those requirements with the installer's hash checking, so a changed file is
//! refused rather than installed. `lock --check` makes the lock again and says what differs.
//!
//! The file format is in [`format`]; making a lock in [`make`] (the install engine, stopped
//! before building anything, then uv's resolver in [`compile`]); installing from one in
//! [`select`] (the engine enforces it, see `install::InstallOptions::locked`); comparing two in
//! [`diff`].

pub mod compile;
pub mod diff;
pub mod format;
pub mod make;
pub mod select;

pub use format::{DEFAULT_FILE, FORMAT, LockFile, LockFileError};
