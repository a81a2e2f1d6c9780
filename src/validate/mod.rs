//! `st2pack validate`: the checks a release pipeline runs on a pack before it is tagged or built.
//!
//! Unlike the installer, which stops at the first problem it meets, validation collects every
//! problem it can find, so one CI run shows the whole list. pack.yaml is checked by the very
//! functions the installer calls ([`PackManifest`]), so the two can never disagree about it; the
//! other checks cover what only fails later, at run time in the cluster (a missing entry point, a
//! requirements line pip rejects) or at image build time (a FIFO, a symlink out of the pack).

mod files;
mod metadata;
mod requirements;

use std::path::{Component, Path, PathBuf};

use serde::{Serialize, Serializer};

use crate::pack::manifest::{MANIFEST_FILE, ManifestError, PackManifest};
use crate::pack::requirements::Policy;

/// One problem, pointing at the file (and line, when known) to fix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The pack directory as given, joined with the file's path inside the pack.
    #[serde(serialize_with = "lossy_path")]
    pub file: PathBuf,
    /// 1-based.
    pub line: Option<usize>,
    pub message: String,
}

/// Everything found in one pack directory.
#[derive(Clone, Debug, Serialize)]
pub struct PackReport {
    /// The directory as given on the command line.
    #[serde(serialize_with = "lossy_path")]
    pub path: PathBuf,
    /// The pack's name (pack.yaml `ref`, else `name`), when pack.yaml gives a valid one.
    pub name: Option<String>,
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl PackReport {
    fn new(path: &Path) -> PackReport {
        PackReport {
            path: path.to_path_buf(),
            name: None,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Whether the pack passed: warnings do not count.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// Records an error in `relative` (a path inside the pack).
    fn error(&mut self, relative: impl AsRef<Path>, line: Option<usize>, message: String) {
        let problem = self.problem(relative.as_ref(), line, message);
        self.errors.push(problem);
    }

    /// Records a warning in `relative` (a path inside the pack).
    fn warning(&mut self, relative: impl AsRef<Path>, message: String) {
        let problem = self.problem(relative.as_ref(), None, message);
        self.warnings.push(problem);
    }

    fn problem(&self, relative: &Path, line: Option<usize>, message: String) -> Problem {
        Problem {
            file: self.path.join(relative),
            line,
            message,
        }
    }
}

/// Why a directory cannot be validated at all (bad usage, as opposed to a bad pack).
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("{} does not exist; give the directory of a pack (the one holding pack.yaml)", .0.display())]
    NoSuchDirectory(PathBuf),
    #[error("{} is not a directory; give the directory of a pack (the one holding pack.yaml)", .0.display())]
    NotADirectory(PathBuf),
}

/// Checks that `dir` is something [`validate_pack`] can look at.
pub fn check_dir(dir: &Path) -> Result<(), ValidateError> {
    match std::fs::metadata(dir) {
        Err(_) => Err(ValidateError::NoSuchDirectory(dir.to_path_buf())),
        Ok(m) if !m.is_dir() => Err(ValidateError::NotADirectory(dir.to_path_buf())),
        Ok(_) => Ok(()),
    }
}

/// Runs every check on the pack in `dir` and returns all that was found; `policy` says what the
/// pack's requirements may ask of the installer.
///
/// A pack with a symlink that leads out of it gets no pack.yaml and metadata checks, which
/// read YAML wherever links lead and would quote what they found on this machine; the file-tree
/// checks name each such link, and the requirements check reads no file through a link.
pub fn validate_pack(dir: &Path, policy: Policy) -> PackReport {
    let mut report = PackReport::new(dir);
    let links_out = crate::pack::symlinks::escaping_links(dir).map_or(true, |l| !l.is_empty());
    if links_out {
        report.warning(
            MANIFEST_FILE,
            "not checked, nor the other metadata of the pack, while the pack has symlinks \
             that lead out of it (listed as errors): fix them and validate again"
                .to_string(),
        );
    } else {
        check_manifest(dir, &mut report);
        metadata::check(dir, &mut report);
    }
    requirements::check(dir, policy, &mut report);
    files::check(dir, &mut report);
    report
}

/// pack.yaml, through the installer's own functions, every compatibility problem reported; the
/// steps after a failed load need a manifest.
fn check_manifest(dir: &Path, report: &mut PackReport) {
    let manifest = match PackManifest::load(dir) {
        Ok(manifest) => manifest,
        Err(e) => return manifest_error(report, &e),
    };
    match manifest.pack_name() {
        Ok(name) => report.name = Some(name.to_string()),
        Err(e) => manifest_error(report, &e),
    }
    for problem in manifest.compat_problems(None) {
        manifest_error(report, &problem);
    }
    if let Err(e) = manifest.dependency_specs() {
        manifest_error(report, &e);
    }
}

/// Records a pack.yaml error, dropping the leading path (and position) that the problem's own
/// file and line already give.
fn manifest_error(report: &mut PackReport, err: &ManifestError) {
    let file = report.path.join(MANIFEST_FILE);
    let line = match err {
        ManifestError::Yaml { line, .. } => *line,
        _ => None,
    };
    let text = err.to_string();
    let message = strip_location(&text, &file).unwrap_or(&text).to_string();
    report.error(MANIFEST_FILE, line, message);
}

/// `"<file>[: line L[, column C]]: rest"` -> `"rest"`.
fn strip_location<'a>(text: &'a str, file: &Path) -> Option<&'a str> {
    let rest = text.strip_prefix(file.to_str()?)?;
    match rest.strip_prefix(": line ") {
        Some(position) => position.split_once(": ").map(|(_, after)| after),
        None => rest.strip_prefix(": "),
    }
}

/// Resolves `.` and `..` in a path relative to the pack root without touching the filesystem;
/// `None` when it is absolute or climbs above the root (where an image has nothing).
fn normalize_within(path: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

fn lossy_path<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    const GOOD_MANIFEST: &str =
        "---\nref: good\nname: Good\ndescription: d\nversion: 1.0.0\nauthor: me\n";

    fn pack(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, text).expect("write");
        }
        dir
    }

    #[test]
    fn a_complete_pack_has_no_problems() {
        let dir = pack(&[
            ("pack.yaml", GOOD_MANIFEST),
            ("README.md", "# good\n"),
            (
                "actions/run.yaml",
                "name: run\nrunner_type: python-script\nentry_point: run.py\n",
            ),
            ("actions/run.py", ""),
        ]);
        let report = validate_pack(dir.path(), Policy::default());
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!(report.name.as_deref(), Some("good"));
        assert!(report.is_ok());
    }

    #[test]
    fn every_compatibility_problem_of_pack_yaml_is_reported() {
        let manifest = "ref: old\nname: old\ndescription: d\nversion: '1.0'\nauthor: me\npython_versions: ['2']\n";
        let report = validate_pack(pack(&[("pack.yaml", manifest)]).path(), Policy::default());
        let messages: Vec<&str> = report.errors.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("1.0")), "{messages:?}");
        assert!(
            messages.iter().any(|m| m.contains("Python 2")),
            "{messages:?}"
        );
    }

    #[test]
    fn pack_yaml_errors_carry_file_and_line_without_repeating_them() {
        let dir = pack(&[("pack.yaml", "name: x\n  description: y\nversion: 1\n")]);
        let report = validate_pack(dir.path(), Policy::default());
        let problem = &report.errors[0];
        assert_eq!(problem.file, dir.path().join("pack.yaml"));
        assert_eq!(problem.line, Some(2), "{problem:?}");
        assert!(!problem.message.contains("pack.yaml: line"), "{problem:?}");
        assert!(!report.is_ok());
    }

    #[test]
    fn every_manifest_step_reports_after_a_successful_load() {
        let dir = pack(&[(
            "pack.yaml",
            "name: Bad-Name\ndescription: d\nversion: \"1.0\"\nauthor: me\n\
             dependencies: [\"no spaces allowed here\"]\n",
        )]);
        let report = validate_pack(dir.path(), Policy::default());
        let messages: Vec<&str> = report.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(report.name, None);
        assert!(
            messages.iter().any(|m| m.contains("not a valid pack name")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("not a semantic version")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.starts_with("dependencies:")),
            "{messages:?}"
        );
    }

    #[test]
    fn a_missing_pack_yaml_names_it_and_other_checks_still_run() {
        let dir = pack(&[("actions/a.yaml", "name: a\n")]);
        let report = validate_pack(dir.path(), Policy::default());
        assert_eq!(report.errors[0].file, dir.path().join("pack.yaml"));
        assert!(report.errors[0].message.contains("has no pack.yaml"));
        assert!(
            report
                .errors
                .iter()
                .any(|e| e.message.contains("runner_type")),
            "{:?}",
            report.errors
        );
    }

    #[test]
    fn strip_location_drops_only_a_leading_file_and_position() {
        let file = Path::new("/p/pack.yaml");
        assert_eq!(
            strip_location("/p/pack.yaml: line 3, column 4: bad; fix it", file),
            Some("bad; fix it")
        );
        assert_eq!(
            strip_location("/p/pack.yaml: line 3: bad", file),
            Some("bad")
        );
        assert_eq!(strip_location("/p/pack.yaml: bad", file), Some("bad"));
        assert_eq!(strip_location("pack x (in /p/pack.yaml)", file), None);
        assert_eq!(strip_location("/p/pack.yaml has none", file), None);
    }

    #[test]
    fn normalize_within_stays_inside_the_root() {
        let n = |p: &str| normalize_within(Path::new(p));
        assert_eq!(
            n("actions/./x/../a.py"),
            Some(PathBuf::from("actions/a.py"))
        );
        assert_eq!(n("actions/../lib/a.py"), Some(PathBuf::from("lib/a.py")));
        assert_eq!(n("a/.."), Some(PathBuf::new()));
        assert_eq!(n("actions/../../x"), None);
        assert_eq!(n(".."), None);
        assert_eq!(n("/etc/passwd"), None);
    }

    #[test]
    fn check_dir_refuses_missing_paths_and_files() {
        let dir = pack(&[("file", "")]);
        assert!(check_dir(dir.path()).is_ok());
        let missing = check_dir(&dir.path().join("nope")).expect_err("missing");
        assert!(matches!(missing, ValidateError::NoSuchDirectory(_)));
        let file = check_dir(&dir.path().join("file")).expect_err("file");
        assert!(file.to_string().contains("is not a directory"), "{file}");
    }
}
