//! Atomic placement of a pack and its virtualenv.
//!
//! Each pack is built in a transaction directory beside its target (same filesystem, so moves are
//! renames): `<packs>/.st2pack-staging/<id>/` and `<virtualenvs>/.st2pack-staging/<id>/`. A new
//! tree replaces the previous one by exchanging the two directories in one step (Linux
//! `renameat2(RENAME_EXCHANGE)`), so `packs/<pack>` and `virtualenvs/<pack>` name a complete
//! tree at every instant. The pack and its virtualenv are still two exchanges, so the commit
//! first writes (and syncs) a journal naming the pack and the new trees; a run that finds a
//! journal without its `committed` marker puts the previous trees back before it does anything
//! else, and removes every other leftover. Where the filesystem cannot exchange, the previous
//! tree is moved aside first, and recovery handles that state too.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
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
            if let Some(journal) = txn.read_journal() {
                if txn.pack_dir.join(COMMITTED).exists() {
                    txn.cleanup()?;
                } else {
                    let name = journal.name.clone();
                    txn.roll_back(&journal)?;
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
        self.commit_stepwise(name, |_| true)
    }

    /// [`commit`](Self::commit), asking `go_on` after each step whether to continue: `false`
    /// leaves everything as a process killed at that point would.
    fn commit_stepwise(
        self,
        name: &str,
        mut go_on: impl FnMut(Step) -> bool,
    ) -> Result<(), PlaceError> {
        self.write_journal(name)?;
        if !go_on(Step::Journaled) {
            return Ok(());
        }
        let moves = [
            (
                self.staged_pack(),
                self.targets.packs_dir.join(name),
                self.pack_dir.join(OLD_PACK),
            ),
            (
                self.staged_venv(),
                self.targets.virtualenvs_dir.join(name),
                self.venv_dir.join(OLD_VENV),
            ),
        ];
        for (staged, target, old) in &moves {
            if fs::symlink_metadata(target).is_err() {
                rename(staged, target)?;
            } else if !exchange(staged, target)? {
                rename(target, old)?;
                if !go_on(Step::MovedAside) {
                    return Ok(());
                }
                rename(staged, target)?;
            }
            if !go_on(Step::Placed) {
                return Ok(());
            }
        }
        for dir in [
            &self.targets.packs_dir,
            &self.targets.virtualenvs_dir,
            &self.pack_dir,
            &self.venv_dir,
        ] {
            sync_dir(dir);
        }
        let marker = self.pack_dir.join(COMMITTED);
        write_synced(&marker, b"")?;
        if !go_on(Step::Committed) {
            return Ok(());
        }
        self.cleanup()
    }

    /// Drops the transaction: nothing was moved, so only staging is removed.
    pub fn abandon(self) -> Result<(), PlaceError> {
        self.cleanup()
    }

    /// Records, durably, which pack is being replaced and which directories are the new trees
    /// (by inode: an exchange leaves no other trace of which tree is where).
    fn write_journal(&self, name: &str) -> Result<(), PlaceError> {
        let inode = |path: &Path| {
            fs::symlink_metadata(path)
                .map(|m| m.ino())
                .map_err(|e| err(path, e))
        };
        let text = format!(
            "{name}\n{}\n{}\n",
            inode(&self.staged_pack())?,
            inode(&self.staged_venv())?
        );
        write_synced(&self.pack_dir.join(JOURNAL), text.as_bytes())?;
        for staging in [self.pack_dir.parent(), self.venv_dir.parent()] {
            staging.map(sync_dir);
        }
        Ok(())
    }

    fn read_journal(&self) -> Option<Journal> {
        let text = fs::read_to_string(self.pack_dir.join(JOURNAL)).ok()?;
        let mut lines = text.lines();
        // The journal names the directory to restore: it must be a plain name, never a path.
        let name = crate::pack::name::PackName::new(lines.next()?.trim()).ok()?;
        let mut inode = || lines.next().and_then(|l| l.trim().parse::<u64>().ok());
        Some(Journal {
            name: name.as_str().to_string(),
            new_pack: inode(),
            new_venv: inode(),
        })
    }

    /// Restores the state from before `commit` started: wherever the new tree made it into
    /// place, the previous one (or none) is put back.
    fn roll_back(self, journal: &Journal) -> Result<(), PlaceError> {
        let name = &journal.name;
        let pairs = [
            (
                self.targets.packs_dir.join(name),
                self.staged_pack(),
                self.pack_dir.join(OLD_PACK),
                journal.new_pack,
            ),
            (
                self.targets.virtualenvs_dir.join(name),
                self.staged_venv(),
                self.venv_dir.join(OLD_VENV),
                journal.new_venv,
            ),
        ];
        for (target, staged, old, new_inode) in &pairs {
            let in_place = fs::symlink_metadata(target).ok().map(|m| m.ino());
            let exists = |path: &Path| fs::symlink_metadata(path).is_ok();
            if in_place.is_some() && in_place == *new_inode {
                if exists(staged) {
                    // Exchanged: the previous tree is in staging; exchange it back.
                    if !exchange(staged, target)? {
                        return Err(err(
                            target,
                            "cannot exchange it back with the previous tree",
                        ));
                    }
                } else if exists(old) {
                    if !exchange(old, target)? {
                        rename(target, staged)?;
                        rename(old, target)?;
                    }
                } else {
                    // A first install: move the new tree back into staging, to be removed.
                    rename(target, staged)?;
                }
            } else if in_place.is_none() && exists(old) {
                rename(old, target)?;
            }
        }
        for dir in [&self.targets.packs_dir, &self.targets.virtualenvs_dir] {
            sync_dir(dir);
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

/// What a journal records.
struct Journal {
    name: String,
    /// Inodes of the new pack and virtualenv directories (none in a journal from an older
    /// version, which only the moved-aside state needs).
    new_pack: Option<u64>,
    new_venv: Option<u64>,
}

/// The points at which a commit can be interrupted, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The journal is durable; nothing has moved.
    Journaled,
    /// Only where the filesystem cannot exchange: the previous tree was moved aside.
    MovedAside,
    /// The new pack (then the new virtualenv) is in place.
    Placed,
    /// The `committed` marker is durable; staging still holds the previous trees.
    Committed,
}

fn rename(from: &Path, to: &Path) -> Result<(), PlaceError> {
    fs::rename(from, to).map_err(|e| err(to, e))
}

/// Swaps `a` and `b` in one atomic step; `false` when the filesystem (or kernel) cannot.
fn exchange(a: &Path, b: &Path) -> Result<bool, PlaceError> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    use rustix::io::Errno;
    match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(true),
        Err(e) if [Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP].contains(&e) => Ok(false),
        Err(e) => Err(err(b, std::io::Error::from(e))),
    }
}

/// Writes `path` and makes it and its directory entry durable before returning.
fn write_synced(path: &Path, content: &[u8]) -> Result<(), PlaceError> {
    let mut file = fs::File::create(path).map_err(|e| err(path, e))?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .map_err(|e| err(path, e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    Ok(())
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

    /// Stops a real commit after each of its steps, as a kill would: at every step both
    /// directories of the pack exist with a complete tree, and recovery leaves the previous install
    /// (or, once the marker is written, the new one) and no debris.
    #[test]
    fn the_pack_and_its_virtualenv_exist_at_every_step_of_a_commit() {
        for stop in 1..=4 {
            let tmp = tempfile::tempdir().unwrap();
            let targets = targets(tmp.path());
            let txn = Transaction::begin(&targets).unwrap();
            stage(&txn, "old");
            txn.commit("demo").unwrap();

            let txn = Transaction::begin(&targets).unwrap();
            stage(&txn, "new");
            let mut steps = Vec::new();
            txn.commit_stepwise("demo", |step| {
                // Reading both fails if either directory is missing.
                let (pack, venv) = installed(&targets, "demo");
                for tree in [pack, venv] {
                    assert!(["old", "new"].contains(&tree.as_str()), "{step:?}: {tree}");
                }
                steps.push(step);
                steps.len() < stop
            })
            .unwrap();
            assert!(!steps.contains(&Step::MovedAside), "{steps:?}");

            targets.recover().unwrap();
            let expected = if steps.last() == Some(&Step::Committed) {
                "new"
            } else {
                "old"
            };
            assert_eq!(
                installed(&targets, "demo"),
                (expected.into(), expected.into()),
                "stop after {steps:?}"
            );
            assert!(staging_is_empty(&targets), "stop after {steps:?}");
        }
    }

    #[test]
    fn a_first_install_stopped_at_any_step_recovers_to_nothing() {
        for stop in 1..=3 {
            let tmp = tempfile::tempdir().unwrap();
            let targets = targets(tmp.path());
            let txn = Transaction::begin(&targets).unwrap();
            stage(&txn, "new");
            let mut count = 0;
            txn.commit_stepwise("demo", |_| {
                count += 1;
                count < stop
            })
            .unwrap();
            targets.recover().unwrap();
            assert!(!targets.packs_dir.join("demo").exists(), "stop {stop}");
            assert!(
                !targets.virtualenvs_dir.join("demo").exists(),
                "stop {stop}"
            );
            assert!(staging_is_empty(&targets), "stop {stop}");
        }
    }

    #[test]
    fn the_journal_and_the_marker_are_written_before_they_count() {
        let tmp = tempfile::tempdir().unwrap();
        let targets = targets(tmp.path());
        let txn = Transaction::begin(&targets).unwrap();
        stage(&txn, "new");
        let pack_dir = txn.pack_dir.clone();
        txn.commit_stepwise("demo", |step| step != Step::Committed)
            .unwrap();
        let journal = fs::read_to_string(pack_dir.join(JOURNAL)).unwrap();
        assert!(journal.starts_with("demo\n"), "{journal:?}");
        assert_eq!(journal.lines().count(), 3, "{journal:?}");
        assert!(pack_dir.join(COMMITTED).exists());
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
