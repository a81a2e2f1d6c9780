//! Listing the source trees: every entry of a layer, in order, decided before a byte is written.
//!
//! Only paths and stat data are kept (never contents): the whole list must be sorted, and a file
//! linked twice can only be recognised once both paths are known.

use std::collections::btree_map::{self, BTreeMap};
use std::collections::hash_map::{self, HashMap};
use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::error::LayerError;
use super::input::LayerInput;

/// Bookkeeping the installer keeps at the top of its target directories; StackStorm ignores it and
/// so does the image.
const BOOKKEEPING: [&str; 2] = [".st2pack-staging", ".st2pack.lock"];

/// The size of a `.pyc` header: magic, flags, then mtime+size or a source hash (PEP 552).
const PYC_HEADER_LEN: usize = 16;

/// What a layer holds, sorted by name.
#[derive(Debug)]
pub(super) struct Plan {
    pub entries: Vec<Entry>,
    /// `entries` cut into the longest consecutive runs that belong to one source (see
    /// [`segments`]), together covering all of them.
    pub segments: Vec<Range<usize>>,
    pub skipped_timestamp_pycs: u64,
}

#[derive(Debug)]
pub(super) struct Entry {
    /// Path in the image: no leading `/`, no trailing `/`.
    pub name: Vec<u8>,
    /// The path on disk (for a directory made up for a parent path: the source that needed it).
    pub origin: PathBuf,
    pub kind: Kind,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Dir,
    File {
        size: u64,
        executable: bool,
        dev: u64,
        ino: u64,
        /// More than one link to the inode exists, so it may appear again in the layer.
        linked: bool,
        /// Modification time in nanoseconds: with the size, a quick check of whether the file
        /// may have changed since an earlier build (see `members`).
        mtime_ns: i128,
    },
    /// A later path of a file already in the layer.
    Hardlink {
        target: Vec<u8>,
        executable: bool,
    },
    Symlink {
        target: Vec<u8>,
    },
}

/// One entry found under a source directory (never the directory itself).
pub(crate) struct SourceEntry<'a> {
    /// The path relative to the source directory.
    pub relative: &'a Path,
    pub path: &'a Path,
    /// Not following symlinks.
    pub metadata: &'a Metadata,
}

/// The normalised form of a path in the image: components joined by `/`, without the leading
/// `/` (empty for the root).
pub(crate) fn image_prefix(path_in_image: &str) -> Result<Vec<u8>, LayerError> {
    let bad = |reason| LayerError::BadImagePath {
        path: path_in_image.to_owned(),
        reason,
    };
    let Some(rest) = path_in_image.strip_prefix('/') else {
        return Err(bad("is not absolute"));
    };
    if rest.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    let mut prefix = Vec::new();
    for component in rest.split('/').filter(|c| !c.is_empty()) {
        if component == "." || component == ".." {
            return Err(bad("contains `.` or `..`"));
        }
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(component.as_bytes());
    }
    Ok(prefix)
}

/// Visits everything under `source` (a directory; a symlink to one is followed) without
/// following symlinks, each directory's entries in name order, leaving out the installer's
/// bookkeeping at the top.
pub(crate) fn walk_source(
    source: &Path,
    mut visit: impl FnMut(SourceEntry<'_>) -> Result<(), LayerError>,
) -> Result<(), LayerError> {
    let root = fs::metadata(source).map_err(|e| LayerError::SourceMissing {
        path: source.to_owned(),
        source: e,
    })?;
    if !root.is_dir() {
        return Err(LayerError::SourceNotDirectory {
            path: source.to_owned(),
        });
    }
    let walker = WalkDir::new(source)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !(e.depth() == 1 && BOOKKEEPING.iter().any(|b| e.file_name() == *b)));
    for entry in walker {
        let entry = entry.map_err(|e| LayerError::Read {
            path: e.path().unwrap_or(source).to_owned(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| io::Error::other("filesystem loop")),
        })?;
        let metadata = entry.metadata().map_err(|e| LayerError::Read {
            path: entry.path().to_owned(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| io::Error::other("filesystem loop")),
        })?;
        let relative = entry.path().strip_prefix(source).unwrap_or(entry.path());
        visit(SourceEntry {
            relative,
            path: entry.path(),
            metadata: &metadata,
        })?;
    }
    Ok(())
}

/// Lists every source of `input` and decides each entry of the layer.
pub(super) fn plan(input: &LayerInput) -> Result<Plan, LayerError> {
    let mut entries = Vec::new();
    let mut skipped_timestamp_pycs = 0;
    // The smallest name wins, so the error does not depend on the order sources are listed in.
    let mut unsupported: Option<(Vec<u8>, PathBuf, &'static str)> = None;
    let mut parents: BTreeMap<Vec<u8>, PathBuf> = BTreeMap::new();
    let mut prefixes = Vec::new();
    for source in &input.sources {
        let prefix = image_prefix(&source.path_in_image)?;
        prefixes.push(prefix.clone());
        for (i, _) in prefix.iter().enumerate().filter(|(_, b)| **b == b'/') {
            if let btree_map::Entry::Vacant(slot) = parents.entry(prefix[..i].to_vec()) {
                slot.insert(source.source.clone());
            }
        }
        let root = source.source.clone();
        walk_source(&root, |found| {
            let name = join(&prefix, found.relative);
            let file_type = found.metadata.file_type();
            let kind = if file_type.is_dir() {
                Kind::Dir
            } else if file_type.is_symlink() {
                let target = fs::read_link(found.path).map_err(|e| read_error(found.path, e))?;
                Kind::Symlink {
                    target: target.as_os_str().as_bytes().to_vec(),
                }
            } else if file_type.is_file() {
                if is_timestamp_pyc(found.path, found.metadata)? {
                    skipped_timestamp_pycs += 1;
                    return Ok(());
                }
                Kind::File {
                    size: found.metadata.len(),
                    executable: found.metadata.mode() & 0o111 != 0,
                    dev: found.metadata.dev(),
                    ino: found.metadata.ino(),
                    linked: found.metadata.nlink() > 1,
                    mtime_ns: i128::from(found.metadata.mtime()) * 1_000_000_000
                        + i128::from(found.metadata.mtime_nsec()),
                }
            } else {
                let what = special_kind(found.metadata);
                if unsupported.as_ref().is_none_or(|(n, _, _)| name < *n) {
                    unsupported = Some((name, found.path.to_owned(), what));
                }
                return Ok(());
            };
            entries.push(Entry {
                name,
                origin: found.path.to_owned(),
                kind,
            });
            Ok(())
        })?;
        if !prefix.is_empty() {
            entries.push(Entry {
                name: prefix,
                origin: root,
                kind: Kind::Dir,
            });
        }
    }
    if let Some((_, path, kind)) = unsupported {
        return Err(LayerError::Unsupported { path, kind });
    }
    // Stable, so that an overlap names its sources in the order they were given.
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(pair) = entries.windows(2).find(|pair| pair[0].name == pair[1].name) {
        return Err(LayerError::Overlap {
            path_in_image: String::from_utf8_lossy(&pair[0].name).into_owned(),
            first: pair[0].origin.clone(),
            second: pair[1].origin.clone(),
        });
    }
    let mut made_up = Vec::new();
    for (name, origin) in parents {
        match entries.binary_search_by(|e| e.name.as_slice().cmp(&name)) {
            Ok(i) if entries[i].kind != Kind::Dir => {
                return Err(LayerError::NotADirectory {
                    path: entries[i].origin.clone(),
                    path_in_image: String::from_utf8_lossy(&name).into_owned(),
                });
            }
            Ok(_) => {}
            Err(_) => made_up.push(Entry {
                name,
                origin,
                kind: Kind::Dir,
            }),
        }
    }
    if !made_up.is_empty() {
        entries.extend(made_up);
        entries.sort_by(|a, b| a.name.cmp(&b.name));
    }
    link_hardlinks(&mut entries);
    Ok(Plan {
        segments: segments(&entries, &prefixes),
        entries,
        skipped_timestamp_pycs,
    })
}

/// Cuts the sorted `entries` into runs that each hold one source's entries, so that each run can
/// be compressed on its own and a pack's virtualenv keeps its compressed bytes when only the pack
/// changes. An entry belongs to the source with the longest prefix containing it; the parents made
/// up for a source (`opt/stackstorm/virtualenvs`) join the run that follows them. The cut depends
/// only on the entries and the set of prefixes, not on the order the sources were given in.
fn segments(entries: &[Entry], prefixes: &[Vec<u8>]) -> Vec<Range<usize>> {
    let owner = |name: &[u8]| {
        prefixes
            .iter()
            .filter(|prefix| {
                prefix.is_empty()
                    || name
                        .strip_prefix(prefix.as_slice())
                        .is_some_and(|rest| rest.is_empty() || rest.first() == Some(&b'/'))
            })
            .max_by_key(|prefix| prefix.len())
    };
    let mut segments = Vec::new();
    let mut start = 0;
    let mut current_owner = None;
    // Where the run of unowned entries just before the current entry began.
    let mut unowned_from = None;
    for (i, entry) in entries.iter().enumerate() {
        match owner(&entry.name) {
            None => {
                unowned_from.get_or_insert(i);
            }
            Some(owner) => {
                if current_owner.is_some_and(|current| current != owner) {
                    let cut = unowned_from.unwrap_or(i);
                    segments.push(start..cut);
                    start = cut;
                }
                current_owner = Some(owner);
                unowned_from = None;
            }
        }
    }
    if start < entries.len() {
        segments.push(start..entries.len());
    }
    segments
}

/// Turns every later path of an inode seen earlier (in sorted order) into a hardlink entry.
fn link_hardlinks(entries: &mut [Entry]) {
    let mut first_paths: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    for entry in entries {
        if let Kind::File {
            dev,
            ino,
            executable,
            linked: true,
            ..
        } = entry.kind
        {
            match first_paths.entry((dev, ino)) {
                hash_map::Entry::Occupied(first) => {
                    entry.kind = Kind::Hardlink {
                        target: first.get().clone(),
                        executable,
                    };
                }
                hash_map::Entry::Vacant(slot) => {
                    slot.insert(entry.name.clone());
                }
            }
        }
    }
}

fn join(prefix: &[u8], relative: &Path) -> Vec<u8> {
    let relative = relative.as_os_str().as_bytes();
    let mut name = Vec::with_capacity(prefix.len() + 1 + relative.len());
    name.extend_from_slice(prefix);
    if !prefix.is_empty() {
        name.push(b'/');
    }
    name.extend_from_slice(relative);
    name
}

/// A `.pyc` in `__pycache__` whose PEP 552 flags are 0, i.e. validated by the source's mtime.
fn is_timestamp_pyc(path: &Path, metadata: &Metadata) -> Result<bool, LayerError> {
    let in_pycache = path.parent().and_then(Path::file_name) == Some(OsStr::new("__pycache__"));
    let is_pyc = path.extension() == Some(OsStr::new("pyc"));
    if !in_pycache || !is_pyc || metadata.len() < PYC_HEADER_LEN as u64 {
        return Ok(false);
    }
    let mut header = [0u8; PYC_HEADER_LEN];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(|e| read_error(path, e))?;
    Ok(header[4..8] == [0, 0, 0, 0])
}

fn special_kind(metadata: &Metadata) -> &'static str {
    let file_type = metadata.file_type();
    if file_type.is_socket() {
        "socket"
    } else if file_type.is_fifo() {
        "FIFO (named pipe)"
    } else if file_type.is_block_device() {
        "block device"
    } else if file_type.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

fn read_error(path: &Path, source: io::Error) -> LayerError {
    LayerError::Read {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn names(plan: &Plan) -> Vec<String> {
        plan.entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect()
    }

    #[test]
    fn image_paths_are_normalised_or_refused() {
        assert_eq!(
            image_prefix("/opt/stackstorm/packs/x/").ok(),
            Some(b"opt/stackstorm/packs/x".to_vec())
        );
        assert_eq!(image_prefix("//opt//x").ok(), Some(b"opt/x".to_vec()));
        assert_eq!(image_prefix("/").ok(), Some(Vec::new()));
        for bad in ["opt/x", "", "/opt/../etc", "/opt/./x", "/a\0b"] {
            let err = image_prefix(bad).expect_err(bad);
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn plan_sorts_adds_parents_once_and_skips_bookkeeping() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pack = dir.path().join("pack");
        let venv = dir.path().join("venv");
        fs::create_dir_all(pack.join(".st2pack-staging/junk")).expect("mkdir");
        fs::create_dir_all(pack.join("actions/lib")).expect("mkdir");
        fs::create_dir_all(venv.join("bin")).expect("mkdir");
        fs::write(pack.join(".st2pack.lock"), "").expect("write");
        fs::write(pack.join("actions/lib/.st2pack.lock"), "").expect("write");
        fs::write(pack.join("actions-b"), "").expect("write");
        fs::write(venv.join("bin/python"), "").expect("write");
        let input = LayerInput::new([(&venv, "/opt/st2/venvs/p"), (&pack, "/opt/st2/packs/p")]);
        let plan = plan(&input).expect("plan");
        assert_eq!(
            names(&plan),
            [
                "opt",
                "opt/st2",
                "opt/st2/packs",
                "opt/st2/packs/p",
                "opt/st2/packs/p/actions",
                "opt/st2/packs/p/actions-b",
                "opt/st2/packs/p/actions/lib",
                // Only the top-level bookkeeping is left out.
                "opt/st2/packs/p/actions/lib/.st2pack.lock",
                "opt/st2/venvs",
                "opt/st2/venvs/p",
                "opt/st2/venvs/p/bin",
                "opt/st2/venvs/p/bin/python",
            ]
        );
    }

    /// The names in each segment of `plan`.
    fn segment_names(plan: &Plan) -> Vec<Vec<String>> {
        let names = names(plan);
        plan.segments
            .iter()
            .map(|range| names[range.clone()].to_vec())
            .collect()
    }

    #[test]
    fn a_pack_and_its_virtualenv_are_separate_segments_whatever_the_source_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pack = dir.path().join("pack");
        let venv = dir.path().join("venv");
        fs::create_dir_all(pack.join("actions")).expect("mkdir");
        fs::create_dir_all(venv.join("bin")).expect("mkdir");
        let pack_first =
            LayerInput::new([(&pack, "/opt/st2/packs/p"), (&venv, "/opt/st2/venvs/p")]);
        let venv_first =
            LayerInput::new([(&venv, "/opt/st2/venvs/p"), (&pack, "/opt/st2/packs/p")]);
        let expected = [
            vec![
                "opt",
                "opt/st2",
                "opt/st2/packs",
                "opt/st2/packs/p",
                "opt/st2/packs/p/actions",
            ],
            // The parent made up for the virtualenv goes with it.
            vec!["opt/st2/venvs", "opt/st2/venvs/p", "opt/st2/venvs/p/bin"],
        ];
        for input in [pack_first, venv_first] {
            assert_eq!(segment_names(&plan(&input).expect("plan")), expected);
        }
        let alone = plan(&LayerInput::new([(&pack, "/opt/st2/packs/p")])).expect("plan");
        assert_eq!(alone.segments.len(), 1);
        assert_eq!(alone.segments[0], 0..alone.entries.len());
    }

    #[test]
    fn segments_follow_the_most_specific_source_and_cover_every_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outer = dir.path().join("outer");
        let inner = dir.path().join("inner");
        fs::create_dir_all(outer.join("a")).expect("mkdir");
        fs::create_dir_all(outer.join("c")).expect("mkdir");
        fs::create_dir_all(&inner).expect("mkdir");
        fs::write(inner.join("f"), "").expect("write");
        // The inner source sits between the outer one's entries: the outer is cut in two.
        let nested = LayerInput::new([(&outer, "/o"), (&inner, "/o/b")]);
        assert_eq!(
            segment_names(&plan(&nested).expect("plan")),
            [vec!["o", "o/a"], vec!["o/b", "o/b/f"], vec!["o/c"]]
        );
        // A source at the root owns everything no more specific source does, made-up parents
        // included.
        let rooted = LayerInput::new([(&outer, "/"), (&inner, "/x/y")]);
        assert_eq!(
            segment_names(&plan(&rooted).expect("plan")),
            [vec!["a", "c", "x"], vec!["x/y", "x/y/f"]]
        );
        let empty = dir.path().join("empty");
        fs::create_dir_all(&empty).expect("mkdir");
        assert!(
            plan(&LayerInput::new([(&empty, "/")]))
                .expect("plan")
                .segments
                .is_empty()
        );
    }

    #[test]
    fn overlapping_sources_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::create_dir_all(a.join("x")).expect("mkdir");
        fs::create_dir_all(&b).expect("mkdir");
        fs::write(a.join("file"), "").expect("write");
        let err = plan(&LayerInput::new([(&a, "/opt"), (&b, "/opt/x")])).expect_err("overlap");
        assert!(matches!(err, LayerError::Overlap { .. }), "{err}");
        let err =
            plan(&LayerInput::new([(&a, "/opt"), (&b, "/opt/file/y")])).expect_err("file as dir");
        assert!(matches!(err, LayerError::NotADirectory { .. }), "{err}");
        assert!(err.to_string().contains("`/opt/file`"), "{err}");
        // A parent that one source has as a real directory is not made up a second time.
        let plan = plan(&LayerInput::new([(&a, "/opt"), (&b, "/opt/x/y")])).expect("nested");
        assert_eq!(names(&plan), ["opt", "opt/file", "opt/x", "opt/x/y"]);
    }

    #[test]
    fn later_paths_of_a_linked_file_become_hardlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("b"), "data").expect("write");
        fs::hard_link(dir.path().join("b"), dir.path().join("a")).expect("link");
        fs::hard_link(dir.path().join("b"), dir.path().join("c")).expect("link");
        symlink("b", dir.path().join("d")).expect("symlink");
        let plan = plan(&LayerInput::new([(dir.path(), "/t")])).expect("plan");
        let kinds: Vec<&Kind> = plan.entries.iter().map(|e| &e.kind).collect();
        assert!(matches!(kinds[1], Kind::File { size: 4, .. }), "{kinds:?}");
        assert_eq!(
            kinds[2],
            &Kind::Hardlink {
                target: b"t/a".to_vec(),
                executable: false
            }
        );
        assert_eq!(
            kinds[3],
            &Kind::Hardlink {
                target: b"t/a".to_vec(),
                executable: false
            }
        );
        assert_eq!(
            kinds[4],
            &Kind::Symlink {
                target: b"b".to_vec()
            }
        );
    }

    #[test]
    fn only_timestamp_pycs_in_pycache_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("__pycache__");
        fs::create_dir(&cache).expect("mkdir");
        let pyc = |flags: u8| {
            let mut header = vec![0x55, 0x0d, 0x0d, 0x0a, flags, 0, 0, 0];
            header.extend_from_slice(&[7; 8]);
            header
        };
        fs::write(cache.join("ts.cpython-311.pyc"), pyc(0)).expect("write");
        fs::write(cache.join("checked.cpython-311.pyc"), pyc(3)).expect("write");
        fs::write(cache.join("unchecked.cpython-311.pyc"), pyc(1)).expect("write");
        fs::write(cache.join("short.pyc"), [0u8; 8]).expect("write");
        fs::write(dir.path().join("legacy.pyc"), pyc(0)).expect("write");
        let plan = plan(&LayerInput::new([(dir.path(), "/")])).expect("plan");
        assert_eq!(plan.skipped_timestamp_pycs, 1);
        assert_eq!(
            names(&plan),
            [
                "__pycache__",
                "__pycache__/checked.cpython-311.pyc",
                "__pycache__/short.pyc",
                "__pycache__/unchecked.cpython-311.pyc",
                "legacy.pyc",
            ]
        );
    }

    #[test]
    fn missing_or_non_directory_sources_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope");
        let err = plan(&LayerInput::new([(&missing, "/x")])).expect_err("missing");
        assert!(matches!(err, LayerError::SourceMissing { .. }));
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
        let file = dir.path().join("file");
        fs::write(&file, "").expect("write");
        let err = plan(&LayerInput::new([(&file, "/x")])).expect_err("file");
        assert!(
            matches!(err, LayerError::SourceNotDirectory { .. }),
            "{err}"
        );
    }
}
