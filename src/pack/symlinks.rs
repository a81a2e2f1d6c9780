//! Where a pack's symlinks lead.
//!
//! A pack is often third-party code, built on machines that hold secrets. A symlink that leads
//! out of the pack's own directory would make the installer read (and compile, and publish) a
//! file of the build machine, or write through it; in the cluster, where the pack is copied
//! elsewhere, it points at whatever is there. Links within the pack are harmless and kept.
//!
//! A link is judged by resolving it as the kernel would, one component at a time, following
//! every symlink it meets inside the pack: judging each link's text alone misses chains such as
//! `a -> b/../x` where `b` is itself a link to a directory higher up.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use walkdir::WalkDir;

/// How many symlinks one resolution may follow before it counts as a loop (Linux's limit).
const MAX_HOPS: usize = 40;

/// A symlink in a pack that leads out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscapingLink {
    /// The link's path inside the pack.
    pub link: PathBuf,
    /// What the link says (its own text, not the resolved path).
    pub target: PathBuf,
}

/// Whether the symlink at `link` (a path relative to `root`, whose directories are real
/// directories) resolves to a path outside `root`. An absolute link always leaves: in the cluster
/// the pack lives at another path. A loop, or a path through something that does not exist,
/// leads nowhere and so not out.
pub fn leaves_pack(root: &Path, link: &Path) -> io::Result<bool> {
    let mut location: Vec<OsString> = link
        .parent()
        .map(|parent| parent.iter().map(OsString::from).collect())
        .unwrap_or_default();
    let mut pending = steps(&fs::read_link(root.join(link))?);
    let mut hops = 0;
    while let Some(step) = pending.pop_front() {
        match step {
            Step::Root => return Ok(true),
            Step::Up => {
                if location.pop().is_none() {
                    return Ok(true);
                }
            }
            Step::Into(name) => {
                location.push(name);
                let here = root.join(location.iter().collect::<PathBuf>());
                if fs::symlink_metadata(&here).is_ok_and(|m| m.file_type().is_symlink()) {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Ok(false);
                    }
                    location.pop();
                    for step in steps(&fs::read_link(&here)?).into_iter().rev() {
                        pending.push_front(step);
                    }
                }
            }
        }
    }
    Ok(false)
}

/// Every symlink under `root` that leads out of it, in path order. Nothing is followed, and
/// `.git` is left out: it is never installed but from a clone st2pack made itself.
pub fn escaping_links(root: &Path) -> io::Result<Vec<EscapingLink>> {
    let mut found = Vec::new();
    for entry in WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
    {
        let entry = entry.map_err(io::Error::other)?;
        if !entry.file_type().is_symlink() {
            continue;
        }
        let link = entry.path().strip_prefix(root).unwrap_or(entry.path());
        if leaves_pack(root, link)? {
            found.push(EscapingLink {
                link: link.to_path_buf(),
                target: fs::read_link(entry.path())?,
            });
        }
    }
    Ok(found)
}

/// One step of a path's resolution.
enum Step {
    Root,
    Up,
    Into(OsString),
}

fn steps(path: &Path) -> VecDeque<Step> {
    path.components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(Step::Into(name.to_os_string())),
            Component::RootDir | Component::Prefix(_) => Some(Step::Root),
            Component::ParentDir => Some(Step::Up),
            Component::CurDir => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn pack() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("actions/lib")).expect("mkdir");
        fs::write(dir.path().join("actions/a.py"), "").expect("write");
        dir
    }

    fn leaves(root: &Path, link: &str) -> bool {
        leaves_pack(root, Path::new(link)).expect("resolve")
    }

    #[test]
    fn links_within_the_pack_stay() {
        let dir = pack();
        let root = dir.path();
        symlink("../a.py", root.join("actions/lib/a.py")).expect("symlink");
        symlink("lib", root.join("actions/lib2")).expect("symlink");
        symlink("../..", root.join("actions/lib/root")).expect("symlink");
        symlink("missing/../../a.py", root.join("actions/dangling")).expect("symlink");
        for link in [
            "actions/lib/a.py",
            "actions/lib2",
            "actions/lib/root",
            "actions/dangling",
        ] {
            assert!(!leaves(root, link), "{link}");
        }
        assert!(escaping_links(root).expect("walk").is_empty());
    }

    #[test]
    fn absolute_and_climbing_links_leave() {
        let dir = pack();
        let root = dir.path();
        symlink("/etc/passwd", root.join("actions/abs")).expect("symlink");
        symlink("../../x", root.join("actions/up")).expect("symlink");
        symlink("..", root.join("parent")).expect("symlink");
        for link in ["actions/abs", "actions/up", "parent"] {
            assert!(leaves(root, link), "{link}");
        }
    }

    #[test]
    fn a_chain_through_a_link_higher_up_leaves() {
        let dir = pack();
        let root = dir.path();
        // Each link alone stays inside when read as text; together they reach the parent.
        symlink("../..", root.join("actions/lib/top")).expect("symlink");
        symlink("top/../secret", root.join("actions/lib/chain")).expect("symlink");
        symlink("lib/chain", root.join("actions/via")).expect("symlink");
        assert!(!leaves(root, "actions/lib/top"));
        assert!(leaves(root, "actions/lib/chain"));
        assert!(leaves(root, "actions/via"));
        let found = escaping_links(root).expect("walk");
        assert_eq!(
            found,
            [
                EscapingLink {
                    link: "actions/lib/chain".into(),
                    target: "top/../secret".into()
                },
                EscapingLink {
                    link: "actions/via".into(),
                    target: "lib/chain".into()
                },
            ]
        );
    }

    #[test]
    fn a_loop_leads_nowhere() {
        let dir = pack();
        let root = dir.path();
        symlink("b", root.join("a")).expect("symlink");
        symlink("a", root.join("b")).expect("symlink");
        assert!(!leaves(root, "a"));
    }
}
