//! The pack's file tree: what the image builder would refuse, what would break once copied into
//! the cluster's volumes, and what does not belong in a release.
//!
//! The builder refuses sockets, FIFOs and devices, and the installer any symlink that leads out
//! of the pack (one that is absolute or climbs out points, in the cluster, at whatever the image
//! or the shared volume happens to hold there). Committed bytecode only earns a warning: it does no harm
//! beyond size, and the installer compiles its own.

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use walkdir::WalkDir;

use super::PackReport;
use crate::pack::symlinks;

pub(super) fn check(dir: &Path, report: &mut PackReport) {
    check_readme(dir, report);
    check_content_dirs(dir, report);
    walk(dir, report);
}

fn check_readme(dir: &Path, report: &mut PackReport) {
    if !dir.join("README.md").is_file() {
        let message = "missing: add a README.md saying what the pack does and how to \
                       configure it (the Exchange and the pack's users read it)";
        report.warning("README.md", message.to_string());
    }
}

fn check_content_dirs(dir: &Path, report: &mut PackReport) {
    if !dir.join("actions").is_dir() && !dir.join("sensors").is_dir() {
        let message = "the pack has neither actions/ nor sensors/, so it gives StackStorm \
                       nothing to run; check that this is the pack's root directory";
        report.warning("actions", message.to_string());
    }
}

/// Everything under `dir` except `.git`, without following symlinks.
fn walk(dir: &Path, report: &mut PackReport) {
    let mut entries = WalkDir::new(dir)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git");
    while let Some(entry) = entries.next() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let path = e.path().unwrap_or(dir);
                let relative = path.strip_prefix(dir).unwrap_or(path).to_path_buf();
                report.error(
                    relative,
                    None,
                    format!("cannot read it: {e}; make it readable"),
                );
                continue;
            }
        };
        let relative = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let file_type = entry.file_type();
        if file_type.is_dir() {
            if entry.file_name() == "__pycache__" {
                bytecode_warning(relative, report);
                entries.skip_current_dir();
            }
        } else if file_type.is_symlink() {
            check_symlink(dir, relative, report);
        } else if file_type.is_file() {
            if relative.extension().is_some_and(|e| e == "pyc") {
                bytecode_warning(relative, report);
            }
        } else {
            special_file_error(&file_type, relative, report);
        }
    }
}

fn bytecode_warning(relative: &Path, report: &mut PackReport) {
    let message = "Python bytecode is committed; remove it and add `__pycache__/` and \
                   `*.pyc` to .gitignore (the installer compiles its own)";
    report.warning(relative, message.to_string());
}

fn special_file_error(file_type: &fs::FileType, relative: &Path, report: &mut PackReport) {
    let what = if file_type.is_socket() {
        "a socket"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_char_device() {
        "a character device"
    } else {
        "a special file"
    };
    let message = format!(
        "is {what}; an image can only hold regular files, directories and symlinks, so the \
         image builder refuses it: remove it from the pack"
    );
    report.error(relative, None, message);
}

/// A symlink must stay inside the pack (see [`symlinks`]): the installer refuses any other, and
/// in the cluster the pack lives at another path, where only links within it still resolve.
fn check_symlink(dir: &Path, relative: &Path, report: &mut PackReport) {
    let (target, leaves) = match fs::read_link(dir.join(relative))
        .and_then(|target| Ok((target, symlinks::leaves_pack(dir, relative)?)))
    {
        Ok(found) => found,
        Err(e) => {
            return report.error(relative, None, format!("cannot read the symlink: {e}"));
        }
    };
    if !leaves {
        return;
    }
    let problem = if target.is_absolute() {
        "is an absolute symlink"
    } else {
        "is a symlink that leaves the pack"
    };
    let message = format!(
        "{problem} (-> {}); the installer refuses it, as it would read a file of the build \
         machine, and in the cluster the pack is copied elsewhere and the link would point at \
         another file or at nothing: link to a path inside the pack, relative to the link, or \
         replace the link with the file",
        target.display()
    );
    report.error(relative, None, message);
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::process::Command;

    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("actions/lib")).expect("mkdir");
        fs::write(dir.path().join("README.md"), "").expect("write");
        dir
    }

    fn run(dir: &Path) -> PackReport {
        let mut report = PackReport::new(Path::new("p"));
        check(dir, &mut report);
        report
    }

    fn files(problems: &[super::super::Problem]) -> Vec<PathBuf> {
        problems.iter().map(|p| p.file.clone()).collect()
    }

    #[test]
    fn a_clean_tree_has_no_problems() {
        let dir = tree();
        fs::write(dir.path().join("actions/a.py"), "").expect("write");
        symlink("../a.py", dir.path().join("actions/lib/a.py")).expect("symlink");
        symlink("lib", dir.path().join("actions/lib2")).expect("symlink");
        fs::create_dir_all(dir.path().join(".git/objects")).expect("mkdir");
        symlink("/etc/passwd", dir.path().join(".git/ignored")).expect("symlink");
        let report = run(dir.path());
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    }

    #[test]
    fn escaping_and_absolute_symlinks_are_named_with_their_targets() {
        let dir = tree();
        symlink("../../etc/passwd", dir.path().join("actions/passwd")).expect("symlink");
        symlink("../..", dir.path().join("actions/lib/up")).expect("symlink");
        symlink("/etc/hostname", dir.path().join("host")).expect("symlink");
        symlink("..", dir.path().join("parent")).expect("symlink");
        let report = run(dir.path());
        assert_eq!(
            files(&report.errors),
            ["p/actions/passwd", "p/host", "p/parent"].map(PathBuf::from)
        );
        assert!(
            report.errors[0]
                .message
                .contains("leaves the pack (-> ../../etc/passwd)")
        );
        assert!(
            report.errors[1]
                .message
                .contains("absolute symlink (-> /etc/hostname)")
        );
    }

    #[test]
    fn sockets_and_fifos_are_refused() {
        let dir = tree();
        let _listener = UnixListener::bind(dir.path().join("actions/sock")).expect("socket");
        let fifo = dir.path().join("fifo");
        let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(status.success());
        let report = run(dir.path());
        assert_eq!(
            files(&report.errors),
            ["p/actions/sock", "p/fifo"].map(PathBuf::from)
        );
        assert!(report.errors[0].message.starts_with("is a socket"));
        assert!(report.errors[1].message.starts_with("is a FIFO"));
    }

    #[test]
    fn bytecode_readme_and_empty_packs_are_warnings() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("lib/__pycache__")).expect("mkdir");
        fs::write(dir.path().join("lib/__pycache__/a.cpython-311.pyc"), "").expect("write");
        fs::write(dir.path().join("lib/old.pyc"), "").expect("write");
        let report = run(dir.path());
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(
            files(&report.warnings),
            [
                "p/README.md",
                "p/actions",
                "p/lib/__pycache__",
                "p/lib/old.pyc"
            ]
            .map(PathBuf::from)
        );
    }
}
