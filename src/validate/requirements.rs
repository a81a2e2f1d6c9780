//! requirements.txt: every line must be something pip accepts, and nothing a pack may not ask of
//! the installer (see [`Policy`]).
//!
//! A bad line fails the pack's virtualenv build, which in a pipeline happens after the pack has
//! been tagged; catching it here names the line. The file is read by the installer's own reader,
//! so the two agree on what it says.

use std::path::Path;

use super::PackReport;
use crate::pack::requirements::{Policy, REQUIREMENTS_FILE, Requirements};

pub(super) fn check(dir: &Path, policy: Policy, report: &mut PackReport) {
    let file = Path::new(REQUIREMENTS_FILE);
    if std::fs::symlink_metadata(dir.join(file)).is_err() {
        return;
    }
    match Requirements::read(dir, file, policy) {
        Ok(found) => {
            for problem in found.problems {
                report.error(problem.file, problem.line, problem.message);
            }
        }
        Err(e) => {
            let message = format!(
                "cannot read it: {}; it must be a readable UTF-8 text file",
                e.source
            );
            report.error(file, None, message);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn run_with(files: &[(&str, &str)], policy: Policy) -> Vec<(String, Option<usize>, String)> {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, text).expect("write");
        }
        let mut report = PackReport::new(Path::new("p"));
        check(dir.path(), policy, &mut report);
        report
            .errors
            .into_iter()
            .map(|p| (p.file.display().to_string(), p.line, p.message))
            .collect()
    }

    fn run(files: &[(&str, &str)]) -> Vec<(String, Option<usize>, String)> {
        run_with(files, Policy::default())
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let found = run(&[(
            "requirements.txt",
            "# deps\nrequests>=2\n\nnot a requirement!\nsix\n",
        )]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "p/requirements.txt");
        assert_eq!(found[0].1, Some(4));
        assert!(found[0].2.contains("\"not a requirement!\""), "{found:?}");
        assert!(run(&[]).is_empty());
    }

    #[test]
    fn included_files_must_exist_and_are_checked_too() {
        let found = run(&[("requirements.txt", "six\n-r missing.txt\n")]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].1, Some(2));
        assert!(
            found[0].2.contains("-r missing.txt: no such file"),
            "{found:?}"
        );
        let found = run(&[
            ("requirements.txt", "-r reqs/base.txt\n-c constraints.txt\n"),
            ("constraints.txt", "six<2\n"),
            ("reqs/base.txt", "-r ../requirements.txt\n-r more.txt\n"),
            ("reqs/more.txt", "six\nbad line here\n"),
        ]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "p/reqs/more.txt");
        assert_eq!(found[0].1, Some(2));
    }

    #[test]
    fn what_a_pack_may_not_ask_is_an_error_unless_allowed() {
        let files = [
            (
                "requirements.txt",
                "-r https://x/reqs.txt\n-r ${DIR}/r.txt\n--extra-index-url http://x\n\
                 -r ../outside.txt\n-e /srv/lib\n",
            ),
            ("r.txt", ""),
        ];
        let found = run(&files);
        let lines: Vec<Option<usize>> = found.iter().map(|f| f.1).collect();
        assert_eq!(
            lines,
            [Some(1), Some(2), Some(3), Some(4), Some(5)],
            "{found:#?}"
        );
        assert!(found[0].2.contains("included by URL"), "{found:?}");
        assert!(found[1].2.contains("${DIR}"), "{found:?}");
        assert!(
            found[2].2.contains("--allow-pack-index-options"),
            "{found:?}"
        );
        assert!(found[3].2.contains("leaves the pack"), "{found:?}");
        assert!(
            found[4].2.contains("/srv/lib: an absolute path"),
            "{found:?}"
        );
        let allowed = Policy {
            allow_index_options: true,
            only_binary: false,
        };
        let found = run_with(&files, allowed);
        let lines: Vec<Option<usize>> = found.iter().map(|f| f.1).collect();
        assert_eq!(lines, [Some(4), Some(5)], "{found:#?}");
    }
}
