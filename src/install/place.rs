//! Atomic placement of a pack and its virtualenv.
//!
//! Each pack is built in a transaction directory beside its target (same filesystem, so moves are
//! renames): `<packs>/.st2pack-staging/<id>/` and `<virtualenvs>/.st2pack-staging/<id>/`. Two
//! renames cannot be one atomic step, so the commit writes a journal first; a run that finds a
//! journal left by a killed process rolls the pack back to exactly its previous state before it
//! does anything else, and removes every other leftover.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Staging area inside both the packs and the virtualenvs directories. StackStorm's loader and
/// the image builder ignore it: it has no `pack.yaml` and is not a valid pack name.
pub const STAGING_DIR: &str = ".st2pack-staging";

const NEW_PACK: &str = "pack";
const NEW_VENV: &str = "venv";
const OLD_PACK: &str = "old-pack";
const OLD_VENV: &str = "old-venv";
const JOURNAL: &str = "journal";
const COMMITTED: &str = "committed";

#[derive(Debug, Error)]
#[error("{path}: {message}")]
pub struct PlaceError {
    pub path: PathBuf,
    pub message: String,
}

fn err(path: &Path, e: impl std::fmt::Display) -> PlaceError {
    PlaceError {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The target directories of one install run.
#[derive(Debug, Clone)]
pub struct Targets {
    pub packs_dir: PathBuf,
    pub virtualenvs_dir: PathBuf,
}

impl Targets {
    pub fn create(&self) -> Result<(), PlaceError> {
        for dir in [&self.packs_dir, &self.virtualenvs_dir] {
            fs::create_dir_all(dir.join(STAGING_DIR)).map_err(|e| err(dir, e))?;
        }
        Ok(())
    }

    /// Finishes or undoes whatever an interrupted run left, and removes stale staging.
    /// Must run under the install lock, before any new transaction starts.
    pub fn recover(&self) -> Result<Vec<String>, PlaceError> {
        let mut notes = Vec::new();
        let pack_staging = self.packs_dir.join(STAGING_DIR);
        for entry in read_dir_sorted(&pack_staging)? {
            let id = entry
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let txn = Transaction::open(self, &id);
            if let Some(name) = txn.journal_name() {
                if txn.pack_dir.join(COMMITTED).exists() {
                    txn.cleanup()?;
                } else {
                    txn.roll_back(&name)?;
                    notes.push(format!(
                        "rolled back an interrupted install of pack {name}: its previous version is in place"
                    ));
                }
            } else {
                txn.cleanup()?;
            }
        }
        // Virtualenv staging without a pack-side journal can only be an unfinished build.
        for entry in read_dir_sorted(&self.virtualenvs_dir.join(STAGING_DIR))? {
            remove_all(&entry)?;
        }
        Ok(notes)
    }
}

/// One pack's trip from staging into place.
#[derive(Debug)]
pub struct Transaction {
    targets: Targets,
    pack_dir: PathBuf,
    venv_dir: PathBuf,
}

impl Transaction {
    /// Starts a transaction with a fresh id; its staging directories are created empty.
    pub fn begin(targets: &Targets) -> Result<Transaction, PlaceError> {
        let id = format!("{}-{:016x}", std::process::id(), rand_u64());
        let txn = Transaction::open(targets, &id);
        fs::create_dir(&txn.pack_dir).map_err(|e| err(&txn.pack_dir, e))?;
        fs::create_dir(&txn.venv_dir).map_err(|e| err(&txn.venv_dir, e))?;
        Ok(txn)
    }

    fn open(targets: &Targets, id: &str) -> Transaction {
        Transaction {
            targets: targets.clone(),
            pack_dir: targets.packs_dir.join(STAGING_DIR).join(id),
            venv_dir: targets.virtualenvs_dir.join(STAGING_DIR).join(id),
        }
    }

    /// Where the new pack's files go before the commit (does not exist yet).
    pub fn staged_pack(&self) -> PathBuf {
        self.pack_dir.join(NEW_PACK)
    }

    /// Where the new virtualenv is built before the commit (does not exist yet).
    pub fn staged_venv(&self) -> PathBuf {
        self.venv_dir.join(NEW_VENV)
    }

    /// Moves the staged pack and virtualenv into place as `name`, replacing any previous install.
    pub fn commit(self, name: &str) -> Result<(), PlaceError> {
        let pack_target = self.targets.packs_dir.join(name);
        let venv_target = self.targets.virtualenvs_dir.join(name);
        self.write_journal(name)?;
        let moves = [
            (&pack_target, self.pack_dir.join(OLD_PACK)),
            (&venv_target, self.venv_dir.join(OLD_VENV)),
        ];
        for (target, old) in &moves {
            if fs::symlink_metadata(target).is_ok() {
                fs::rename(target, old).map_err(|e| err(target, e))?;
            }
        }
        fs::rename(self.staged_pack(), &pack_target).map_err(|e| err(&pack_target, e))?;
        fs::rename(self.staged_venv(), &venv_target).map_err(|e| err(&venv_target, e))?;
        sync_dir(&self.targets.packs_dir);
        sync_dir(&self.targets.virtualenvs_dir);
        let marker = self.pack_dir.join(COMMITTED);
        fs::write(&marker, b"").map_err(|e| err(&marker, e))?;
        self.cleanup()
    }

    /// Drops the transaction: nothing was moved, so only staging is removed.
    pub fn abandon(self) -> Result<(), PlaceError> {
        self.cleanup()
    }

    fn write_journal(&self, name: &str) -> Result<(), PlaceError> {
        let path = self.pack_dir.join(JOURNAL);
        let mut file = fs::File::create(&path).map_err(|e| err(&path, e))?;
        file.write_all(name.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| err(&path, e))?;
        sync_dir(&self.pack_dir);
        Ok(())
    }

    fn journal_name(&self) -> Option<String> {
        let name = fs::read_to_string(self.pack_dir.join(JOURNAL)).ok()?;
        // The journal names the directory to restore: it must be a plain name, never a path.
        crate::pack::name::PackName::new(name.trim())
            .ok()
            .map(|n| n.as_str().to_string())
    }

    /// Restores the state from before `commit` started: a new tree that made it into place is
    /// removed, and the old one is moved back.
    fn roll_back(self, name: &str) -> Result<(), PlaceError> {
        let pairs = [
            (
                self.targets.packs_dir.join(name),
                self.staged_pack(),
                self.pack_dir.join(OLD_PACK),
            ),
            (
                self.targets.virtualenvs_dir.join(name),
                self.staged_venv(),
                self.venv_dir.join(OLD_VENV),
            ),
        ];
        for (target, staged, old) in &pairs {
            let new_moved_in = fs::symlink_metadata(staged).is_err();
            if new_moved_in && fs::symlink_metadata(target).is_ok() {
                remove_all(target)?;
            }
            if fs::symlink_metadata(old).is_ok() {
                if fs::symlink_metadata(target).is_ok() {
                    // The old tree was never moved out of the way: it is still in place.
                    remove_all(old)?;
                } else {
                    fs::rename(old, target).map_err(|e| err(target, e))?;
                }
            }
        }
        self.cleanup()
    }

    fn cleanup(self) -> Result<(), PlaceError> {
        remove_all(&self.venv_dir)?;
        remove_all(&self.pack_dir)
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, PlaceError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(err(dir, e)),
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    Ok(paths)
}

fn remove_all(path: &Path) -> Result<(), PlaceError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err(path, e)),
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path).map_err(|e| err(path, e)),
        Ok(_) => fs::remove_file(path).map_err(|e| err(path, e)),
    }
}

/// Makes the renames in `dir` durable; best effort, as some filesystems refuse to sync a directory.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(root: &Path) -> Targets {
        let targets = Targets {
            packs_dir: root.join("packs"),
            virtualenvs_dir: root.join("virtualenvs"),
        };
        targets.create().unwrap();
        targets
    }

    fn stage(txn: &Transaction, marker: &str) {
        fs::create_dir(txn.staged_pack()).unwrap();
        fs::write(txn.staged_pack().join("pack.yaml"), marker).unwrap();
        fs::create_dir(txn.staged_venv()).unwrap();
        fs::write(txn.staged_venv().join("pyvenv.cfg"), marker).unwrap();
    }

    fn installed(targets: &Targets, name: &str) -> (String, String) {
        (
            fs::read_to_string(targets.packs_dir.join(name).join("pack.yaml")).unwrap(),
            fs::read_to_string(targets.virtualenvs_dir.join(name).join("pyvenv.cfg")).unwrap(),
        )
    }

    fn staging_is_empty(targets: &Targets) -> bool {
        read_dir_sorted(&targets.packs_dir.join(STAGING_DIR))
            .unwrap()
            .is_empty()
            && read_dir_sorted(&targets.virtualenvs_dir.join(STAGING_DIR))
                .unwrap()
                .is_empty()
    }

    #[test]
    fn commit_replaces_previous_install_and_cleans_staging() {
        let tmp = tempfile::tempdir().unwrap();
        let targets = targets(tmp.path());
        for version in ["v1", "v2"] {
            let txn = Transaction::begin(&targets).unwrap();
            stage(&txn, version);
            txn.commit("demo").unwrap();
            assert_eq!(
                installed(&targets, "demo"),
                (version.into(), version.into())
            );
        }
        assert!(staging_is_empty(&targets));
    }

    /// Simulates a process killed at each point of the commit and checks that recovery puts the
    /// previous install back exactly.
    #[test]
    fn recovery_restores_previous_install_after_a_kill_at_any_step() {
        for step in 0..=3 {
            let tmp = tempfile::tempdir().unwrap();
            let targets = targets(tmp.path());
            let txn = Transaction::begin(&targets).unwrap();
            stage(&txn, "old");
            txn.commit("demo").unwrap();

            let txn = Transaction::begin(&targets).unwrap();
            stage(&txn, "new");
            txn.write_journal("demo").unwrap();
            let pack = targets.packs_dir.join("demo");
            let venv = targets.virtualenvs_dir.join("demo");
            if step >= 1 {
                fs::rename(&pack, txn.pack_dir.join(OLD_PACK)).unwrap();
            }
            if step >= 2 {
                fs::rename(&venv, txn.venv_dir.join(OLD_VENV)).unwrap();
                fs::rename(txn.staged_pack(), &pack).unwrap();
            }
            if step >= 3 {
                fs::rename(txn.staged_venv(), &venv).unwrap();
            }
            std::mem::forget(txn);

            let notes = targets.recover().unwrap();
            assert_eq!(notes.len(), 1, "step {step}: {notes:?}");
            assert_eq!(
                installed(&targets, "demo"),
                ("old".into(), "old".into()),
                "step {step}"
            );
            assert!(staging_is_empty(&targets), "step {step}");
        }
    }

    #[test]
    fn recovery_of_a_first_install_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let targets = targets(tmp.path());
        let txn = Transaction::begin(&targets).unwrap();
        stage(&txn, "new");
        txn.write_journal("demo").unwrap();
        fs::rename(txn.staged_pack(), targets.packs_dir.join("demo")).unwrap();
        std::mem::forget(txn);
        targets.recover().unwrap();
        assert!(!targets.packs_dir.join("demo").exists());
        assert!(!targets.virtualenvs_dir.join("demo").exists());
        assert!(staging_is_empty(&targets));
    }

    #[test]
    fn committed_but_uncleaned_transaction_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let targets = targets(tmp.path());
        let txn = Transaction::begin(&targets).unwrap();
        stage(&txn, "new");
        let leftover = Transaction::open(
            &targets,
            txn.pack_dir.file_name().unwrap().to_str().unwrap(),
        );
        txn.commit("demo").unwrap();
        // Re-create what a kill right after the "committed" marker would leave.
        fs::create_dir_all(leftover.pack_dir.join(OLD_PACK)).unwrap();
        fs::write(leftover.pack_dir.join(JOURNAL), "demo").unwrap();
        fs::write(leftover.pack_dir.join(COMMITTED), "").unwrap();
        assert!(targets.recover().unwrap().is_empty());
        assert_eq!(installed(&targets, "demo"), ("new".into(), "new".into()));
        assert!(staging_is_empty(&targets));
    }
}
