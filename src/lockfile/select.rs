//! Installing from a lock: which locked packs a command installs, the specs that fetch them at
//! their locked commits, and what the engine enforces of each (see
//! `install::InstallOptions::locked`).
//!
//! PACK specs given with `--locked` choose a subset: each must be in the lock (as a spec that
//! resolved to a pack, or as a pack name), and the packs they depend on come along. No PACK
//! means every pack of the lock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::format::{LockFile, LockedPackEntry};
use crate::install::LockedPack;
use crate::pack::pin::RuntimePin;
use crate::pack::spec::{PackSource, PackSpec};
use crate::redact::redact_url;

#[derive(Debug, Error)]
pub enum SelectError {
    #[error(
        "{path} was locked for {locked}, but this run builds for {asked}\n  run with the \
         runtime options the lock was made with, or lock again for this runtime"
    )]
    OtherRuntime {
        path: PathBuf,
        locked: String,
        asked: String,
    },
    #[error(
        "{spec} is not in the lock file {path} (it locks: {locked})\n  lock it first (st2pack lock), or leave it out to install the whole lock"
    )]
    NotLocked {
        spec: String,
        path: PathBuf,
        locked: String,
    },
    #[error(
        "{path}: pack {pack} depends on {dependency}, which the lock file does not hold\n  lock again with `st2pack lock`"
    )]
    MissingDependency {
        path: PathBuf,
        pack: String,
        dependency: String,
    },
    #[error("{path}: {message}\n  lock again with `st2pack lock`")]
    Invalid { path: PathBuf, message: String },
}

/// What an install from a lock gets: the specs to fetch, and what the engine holds each
/// fetched pack to, by name.
#[derive(Debug)]
pub struct Selection {
    pub specs: Vec<PackSpec>,
    pub locked: BTreeMap<String, LockedPack>,
}

/// Refuses a lock made for another runtime than `asked`.
pub fn check_runtime(lock: &LockFile, path: &Path, asked: &RuntimePin) -> Result<(), SelectError> {
    if lock.runtime.runs_with(asked) {
        return Ok(());
    }
    Err(SelectError::OtherRuntime {
        path: path.to_path_buf(),
        locked: lock.runtime.describe(),
        asked: asked.describe(),
    })
}

/// The packs of `lock` that `given` (PACK specs, maybe none) asks for, with their dependencies.
pub fn select(lock: &LockFile, path: &Path, given: &[PackSpec]) -> Result<Selection, SelectError> {
    let mut wanted: Vec<&LockedPackEntry> = Vec::new();
    if given.is_empty() {
        wanted.extend(&lock.packs);
    } else {
        for spec in given {
            let shown = spec.to_string();
            let found = lock.packs.iter().find(|pack| {
                pack.specs.contains(&shown)
                    || matches!(&spec.source, PackSource::Exchange { name } if *name == pack.name && spec.reference.is_none())
            });
            match found {
                Some(pack) => wanted.push(pack),
                None => {
                    return Err(SelectError::NotLocked {
                        spec: shown,
                        path: path.to_path_buf(),
                        locked: lock
                            .packs
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
        }
    }
    // The packs they depend on, however deep.
    let mut chosen: BTreeSet<&str> = BTreeSet::new();
    while let Some(pack) = wanted.pop() {
        if !chosen.insert(&pack.name) {
            continue;
        }
        for dependency in &pack.dependencies {
            let found = lock
                .pack(dependency)
                .ok_or_else(|| SelectError::MissingDependency {
                    path: path.to_path_buf(),
                    pack: pack.name.clone(),
                    dependency: dependency.clone(),
                })?;
            wanted.push(found);
        }
    }
    let mut specs = Vec::new();
    let mut locked = BTreeMap::new();
    for name in chosen {
        let Some(pack) = lock.pack(name) else {
            continue;
        };
        if pack.commit.is_none() && pack.content_digest.is_none() {
            return Err(SelectError::Invalid {
                path: path.to_path_buf(),
                message: format!("pack {name} has neither a commit nor a content digest"),
            });
        }
        specs.push(locked_spec(pack, given));
        locked.insert(
            pack.name.clone(),
            LockedPack {
                reference: pack.reference.clone(),
                commit: pack.commit.clone(),
                content_digest: pack.content_digest.clone(),
                requirements: pack.requirements_text(),
            },
        );
    }
    Ok(Selection { specs, locked })
}

/// The spec that fetches `pack` at its locked commit (a directory copied as it is has none: its
/// content is checked instead). The lock keeps no credentials: a source that had some is taken
/// from a PACK spec given with them, when one names the same URL.
fn locked_spec(pack: &LockedPackEntry, given: &[PackSpec]) -> PackSpec {
    let source = &pack.source;
    let plain_path = ["./", "../", "/", "~/"]
        .iter()
        .any(|p| source.starts_with(p))
        || matches!(source.as_str(), "." | "..");
    let source_spec = if plain_path {
        PackSource::Local {
            path: PathBuf::from(source),
        }
    } else {
        let url = given
            .iter()
            .filter_map(PackSpec::git_url_of)
            .find(|url| redact_url(url) == *source && *url != source)
            .unwrap_or(source);
        PackSource::Git {
            url: url.to_string(),
        }
    };
    let at = pack
        .commit
        .as_deref()
        .or(pack.content_digest.as_deref())
        .unwrap_or_default();
    PackSpec {
        raw: format!("{} (locked: {source} at {at})", pack.name),
        source: source_spec,
        reference: pack.commit.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lockfile::format::{FORMAT, LockSettings, LockedRequirement};

    fn entry(name: &str, source: &str, dependencies: &[&str]) -> LockedPackEntry {
        LockedPackEntry {
            name: name.into(),
            version: "1.0.0".into(),
            source: source.into(),
            reference: Some("v1.0.0".into()),
            commit: Some(format!("{name:0<40}").replace(|c: char| !c.is_ascii_hexdigit(), "a")),
            content_digest: None,
            specs: vec![name.into()],
            dependencies: dependencies.iter().map(|d| d.to_string()).collect(),
            requirements_digest: None,
            requirements: vec![LockedRequirement {
                name: "six".into(),
                version: Some("1.16.0".into()),
                url: None,
                marker: None,
                hashes: vec!["sha256:aa".into()],
            }],
        }
    }

    fn lock() -> LockFile {
        LockFile {
            format: FORMAT,
            requested: vec!["app".into()],
            runtime: RuntimePin::default(),
            settings: LockSettings::default(),
            packs: vec![
                LockedPackEntry {
                    specs: vec!["https://***@git.example.com/app.git".into()],
                    ..entry("app", "https://***@git.example.com/app.git", &["lib"])
                },
                entry("lib", "./packs/lib", &[]),
                entry("other", "https://git.example.com/other.git", &[]),
            ],
        }
    }

    fn spec(raw: &str) -> PackSpec {
        PackSpec::parse(raw).unwrap()
    }

    #[test]
    fn no_pack_means_the_whole_lock() {
        let selection = select(&lock(), Path::new("x.lock"), &[]).unwrap();
        assert_eq!(selection.specs.len(), 3);
        assert_eq!(
            selection.locked["app"].requirements,
            "six==1.16.0 \\\n    --hash=sha256:aa\n"
        );
    }

    #[test]
    fn a_subset_brings_its_dependencies_at_their_locked_commits() {
        let token = "https://secret-token@git.example.com/app.git";
        let selection = select(&lock(), Path::new("x.lock"), &[spec(token)]).unwrap();
        let names: Vec<&String> = selection.locked.keys().collect();
        assert_eq!(names, ["app", "lib"]);
        let app = &selection.specs[0];
        // The credentials the lock left out come from the spec given with them.
        assert_eq!(app.git_url_of(), Some(token));
        assert_eq!(app.reference, lock().packs[0].commit);
        assert!(!app.to_string().contains("secret"), "{app}");
        let lib = &selection.specs[1];
        assert_eq!(
            lib.source,
            PackSource::Local {
                path: "./packs/lib".into()
            }
        );
    }

    #[test]
    fn a_pack_outside_the_lock_is_refused_naming_what_it_holds() {
        let message = select(&lock(), Path::new("x.lock"), &[spec("nope")])
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("nope is not in the lock file x.lock"),
            "{message}"
        );
        assert!(message.contains("app, lib, other"), "{message}");
        let mut broken = lock();
        broken.packs.remove(1);
        let message = select(&broken, Path::new("x.lock"), &[])
            .unwrap_err()
            .to_string();
        assert!(message.contains("depends on lib"), "{message}");
    }
}
