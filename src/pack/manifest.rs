//! pack.yaml: the model of a pack's manifest and the checks StackStorm applies before installing it.
//!
//! Parsing is lenient where real pack.yaml files are (unknown keys, `version: 1.0` written as a YAML
//! number) and strict where a mistake would break an install (missing fields, unsafe names). The
//! version checks live apart from parsing in [`PackManifest::check_compat`], because `--force` may
//! relax them while a malformed file or an unsafe name is never acceptable.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::name::{NameError, PackName};
use super::spec::{PackSpec, SpecError};

/// The manifest every pack carries at its root; StackStorm reads no other name.
pub const MANIFEST_FILE: &str = "pack.yaml";

/// A validated pack.yaml.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PackManifest {
    pub name: String,
    pub r#ref: Option<String>,
    pub description: String,
    pub version: String,
    pub author: String,
    pub email: Option<String>,
    /// Pack specs, in the same grammar as the command line.
    pub dependencies: Vec<String>,
    /// Empty when pack.yaml does not say (which StackStorm treats as "any").
    pub python_versions: Vec<String>,
    pub stackstorm_version: Option<String>,
    /// The pack.yaml this was read from, so later checks can point at it.
    #[serde(skip)]
    pub file: PathBuf,
}

/// What pack.yaml may contain; every field optional so missing ones get our own message.
#[derive(Deserialize)]
#[serde(expecting = "a mapping of pack.yaml fields (name, description, version, author, ...)")]
struct RawManifest {
    name: Option<Scalar>,
    #[serde(rename = "ref")]
    reference: Option<Scalar>,
    description: Option<String>,
    version: Option<Scalar>,
    author: Option<String>,
    email: Option<String>,
    dependencies: Option<Vec<String>>,
    python_versions: Option<Vec<Scalar>>,
    stackstorm_version: Option<Scalar>,
}

/// A string that may have been written as a YAML number (`version: 1.0`, `- 3`).
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            // `{:?}` keeps the `.0` of `1.0`, so the message shows what the user wrote.
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(format!("{v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

impl PackManifest {
    /// Reads and validates `dir/pack.yaml`.
    pub fn load(dir: &Path) -> Result<PackManifest, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path),
            Err(_) if !dir.exists() => Err(ManifestError::NoSuchDirectory {
                dir: dir.to_path_buf(),
            }),
            Err(_) if !dir.is_dir() => Err(ManifestError::NotADirectory {
                dir: dir.to_path_buf(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ManifestError::Missing {
                dir: dir.to_path_buf(),
                found_yml: dir.join("pack.yml").is_file(),
            }),
            Err(source) => Err(ManifestError::Read { path, source }),
        }
    }

    /// Parses pack.yaml text; `file` is only used in messages and kept in [`PackManifest::file`].
    pub fn parse(text: &str, file: &Path) -> Result<PackManifest, ManifestError> {
        let raw: Option<RawManifest> =
            serde_yaml_ng::from_str(text).map_err(|e| yaml_error(file, &e))?;
        let Some(raw) = raw else {
            return Err(ManifestError::Empty {
                path: file.to_path_buf(),
            });
        };
        let required = |field: &'static str, value: Option<String>| match value {
            None => Err(ManifestError::MissingField {
                path: file.to_path_buf(),
                field,
            }),
            Some(v) if v.trim().is_empty() => Err(ManifestError::EmptyField {
                path: file.to_path_buf(),
                field,
            }),
            Some(v) => Ok(v),
        };
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        Ok(PackManifest {
            name: required("name", raw.name.map(|s| s.0))?,
            r#ref: non_empty(raw.reference.map(|s| s.0)),
            description: required("description", raw.description)?,
            version: required("version", raw.version.map(|s| s.0))?,
            author: required("author", raw.author)?,
            email: non_empty(raw.email),
            dependencies: raw.dependencies.unwrap_or_default(),
            python_versions: raw
                .python_versions
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.0)
                .collect(),
            stackstorm_version: non_empty(raw.stackstorm_version.map(|s| s.0)),
            file: file.to_path_buf(),
        })
    }

    /// `ref` if present, else `name`, validated as a PackName.
    ///
    /// Never relaxed by `--force`: this name becomes a directory.
    pub fn pack_name(&self) -> Result<PackName, ManifestError> {
        let (field, value) = match &self.r#ref {
            Some(r) => ("ref", r),
            None => ("name", &self.name),
        };
        PackName::new(value).map_err(|source| ManifestError::BadName {
            path: self.file.clone(),
            field,
            source,
        })
    }

    /// Parses `dependencies` as pack specs, naming this pack.yaml in any error.
    pub fn dependency_specs(&self) -> Result<Vec<PackSpec>, ManifestError> {
        self.dependencies
            .iter()
            .map(|d| {
                PackSpec::parse(d).map_err(|source| ManifestError::Dependency {
                    path: self.file.clone(),
                    source,
                })
            })
            .collect()
    }

    /// Version compatibility. `force` relaxes these checks (returns the problems as warnings instead).
    pub fn check_compat(
        &self,
        st2_version: Option<&semver::Version>,
        force: bool,
    ) -> Result<Vec<String /*warnings*/>, ManifestError> {
        let mut warnings = Vec::new();
        for problem in self.compat_problems(st2_version) {
            if !force {
                return Err(problem);
            }
            warnings.push(
                problem
                    .forced_warning()
                    .unwrap_or_else(|| problem.to_string()),
            );
        }
        Ok(warnings)
    }

    /// Every version-compatibility problem, not only the first: what `st2pack validate` reports.
    pub fn compat_problems(&self, st2_version: Option<&semver::Version>) -> Vec<ManifestError> {
        let mut problems = Vec::new();
        let path = || self.file.clone();
        if semver::Version::parse(&self.version).is_err() {
            problems.push(ManifestError::BadVersion {
                path: path(),
                version: self.version.clone(),
            });
        }
        if !self.python_versions.is_empty() && !self.python_versions.iter().any(|v| is_python3(v)) {
            problems.push(ManifestError::Python2Only {
                path: path(),
                pack: self.display_name(),
                versions: self.python_versions.clone(),
            });
        }
        if let Some(requirement) = &self.stackstorm_version {
            match parse_requirement(requirement) {
                Err(e) => problems.push(ManifestError::BadStackstormVersion {
                    path: path(),
                    requirement: requirement.clone(),
                    reason: e.to_string(),
                }),
                Ok(req) => {
                    if let Some(actual) = st2_version
                        && !req.matches(&release_of(actual))
                    {
                        problems.push(ManifestError::IncompatibleStackstorm {
                            path: path(),
                            pack: self.display_name(),
                            requirement: requirement.clone(),
                            actual: actual.to_string(),
                        });
                    }
                }
            }
        }
        problems
    }

    /// The pack's name for messages: bare when it is a valid name, quoted (escaped) otherwise.
    fn display_name(&self) -> String {
        match self.pack_name() {
            Ok(n) => n.to_string(),
            Err(_) => format!("{:?}", self.r#ref.as_deref().unwrap_or(&self.name)),
        }
    }
}

fn is_python3(v: &str) -> bool {
    let v = v.trim();
    v == "3" || v.starts_with("3.")
}

/// StackStorm development builds are versioned like `3.9.0-dev`; semver would exclude such
/// pre-releases from `>=3.0.0`, so requirements are matched against the release they lead to.
fn release_of(v: &semver::Version) -> semver::Version {
    semver::Version::new(v.major, v.minor, v.patch)
}

/// Parses `>=3.0.0,<3.9`, and also the pip style `>=3.0.0 <3.9` or `== 3.1.0` that pack authors
/// write, by putting the comparators into semver's comma-separated form.
fn parse_requirement(text: &str) -> Result<semver::VersionReq, semver::Error> {
    let mut parts = Vec::new();
    let mut op = String::new();
    for token in text.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
        op.push_str(token);
        if token.chars().all(|c| "<>=~^!".contains(c)) {
            continue; // an operator written apart from its version
        }
        let part = std::mem::take(&mut op);
        parts.push(match part.strip_prefix("==") {
            Some(rest) => format!("={rest}"),
            None => part,
        });
    }
    if !op.is_empty() {
        parts.push(op);
    }
    semver::VersionReq::parse(&parts.join(", "))
}

/// Turns a serde_yaml_ng error into one that names the file and puts the position first.
fn yaml_error(path: &Path, err: &serde_yaml_ng::Error) -> ManifestError {
    let location = err.location();
    let mut message = err.to_string();
    if let Some(loc) = &location {
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        message = message.replacen(&suffix, "", 1);
    }
    ManifestError::Yaml {
        path: path.to_path_buf(),
        line: location.as_ref().map(serde_yaml_ng::Location::line),
        column: location.as_ref().map(serde_yaml_ng::Location::column),
        message,
    }
}

/// Why a pack.yaml was rejected. Every message names the file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "{} has no pack.yaml: every pack needs a pack.yaml at its root (with name, description, \
         version and author); {}",
        .dir.display(),
        missing_hint(*.found_yml)
    )]
    Missing { dir: PathBuf, found_yml: bool },
    #[error("pack directory {} does not exist; check the path", .dir.display())]
    NoSuchDirectory { dir: PathBuf },
    #[error(
        "{} is not a directory: a pack is a directory with a pack.yaml at its root; \
         give the pack's directory",
        .dir.display()
    )]
    NotADirectory { dir: PathBuf },
    #[error("cannot read {}: {source}; check that it is a readable UTF-8 text file", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: pack.yaml is empty; it must define name, description, version and author", .path.display())]
    Empty { path: PathBuf },
    #[error("{}{}: {message}; {}", .path.display(), position(*.line, *.column), yaml_hint(.message))]
    Yaml {
        path: PathBuf,
        /// 1-based, when the parser knows it.
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    #[error(
        "{}: required field \"{field}\" is missing; every pack.yaml needs name, description, \
         version and author",
        .path.display()
    )]
    MissingField { path: PathBuf, field: &'static str },
    #[error(
        "{}: required field \"{field}\" is empty; every pack.yaml needs a non-empty name, \
         description, version and author",
        .path.display()
    )]
    EmptyField { path: PathBuf, field: &'static str },
    #[error(
        "{}: {field} {} is not a valid pack name ({}): {}",
        .path.display(),
        .source.quoted_name(),
        bad_name_hint(.field),
        .source.reason()
    )]
    BadName {
        path: PathBuf,
        /// `ref` or `name`, whichever names the pack.
        field: &'static str,
        #[source]
        source: NameError,
    },
    #[error("{}: dependencies: {source}", .path.display())]
    Dependency {
        path: PathBuf,
        #[source]
        source: SpecError,
    },
    #[error("{}; fix it in pack.yaml, or pass --force to install anyway", bad_version_problem(.path, .version))]
    BadVersion { path: PathBuf, version: String },
    #[error(
        "{}; install a version of the pack that supports Python 3, or pass --force to install anyway",
        python2_problem(.path, .pack, .versions)
    )]
    Python2Only {
        path: PathBuf,
        pack: String,
        versions: Vec<String>,
    },
    #[error(
        "{}; write it like \">=3.0.0\" or \">=3.0.0,<3.9\", or pass --force to install anyway",
        bad_requirement_problem(.path, .requirement, .reason)
    )]
    BadStackstormVersion {
        path: PathBuf,
        requirement: String,
        reason: String,
    },
    #[error(
        "{}; install a version of the pack made for StackStorm {actual}, or pass --force to install anyway",
        incompatible_problem(.path, .pack, .requirement, .actual)
    )]
    IncompatibleStackstorm {
        path: PathBuf,
        pack: String,
        requirement: String,
        actual: String,
    },
}

impl ManifestError {
    /// For problems `--force` relaxes: the message to warn with instead of failing.
    fn forced_warning(&self) -> Option<String> {
        let problem = match self {
            ManifestError::BadVersion { path, version } => bad_version_problem(path, version),
            ManifestError::Python2Only {
                path,
                pack,
                versions,
            } => python2_problem(path, pack, versions),
            ManifestError::BadStackstormVersion {
                path,
                requirement,
                reason,
            } => bad_requirement_problem(path, requirement, reason),
            ManifestError::IncompatibleStackstorm {
                path,
                pack,
                requirement,
                actual,
            } => incompatible_problem(path, pack, requirement, actual),
            _ => return None,
        };
        Some(format!("{problem} (installing anyway because of --force)"))
    }
}

fn missing_hint(found_yml: bool) -> &'static str {
    if found_yml {
        "there is a pack.yml: rename it to pack.yaml"
    } else {
        "check that the path or repository is the pack itself, not a directory above it"
    }
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(": line {l}, column {c}"),
        (Some(l), None) => format!(": line {l}"),
        _ => String::new(),
    }
}

fn yaml_hint(message: &str) -> &'static str {
    if message.contains("expected a sequence") {
        "write a list with one \"- item\" per line, or as [a, b]"
    } else {
        "fix pack.yaml (check indentation, quoting and field types)"
    }
}

fn bad_name_hint(field: &str) -> &'static str {
    if field == "ref" {
        "the pack is installed in a directory named after ref; fix ref in pack.yaml"
    } else {
        "without a ref the pack is installed in a directory named after name; \
         add a ref to pack.yaml such as ref: my_pack"
    }
}

fn bad_version_problem(path: &Path, version: &str) -> String {
    let mut msg = format!(
        "{}: version {version:?} is not a semantic version; StackStorm requires x.y.z such as 1.0.0",
        path.display()
    );
    if version.parse::<f64>().is_ok() {
        msg.push_str(
            " (YAML reads an unquoted version like 1.0 as a number: write version: \"1.0.0\")",
        );
    }
    msg
}

fn python2_problem(path: &Path, pack: &str, versions: &[String]) -> String {
    format!(
        "pack {pack} supports only Python 2 (python_versions: [{}] in {}), but StackStorm runs \
         packs on Python 3",
        versions.join(", "),
        path.display()
    )
}

fn bad_requirement_problem(path: &Path, requirement: &str, reason: &str) -> String {
    format!(
        "{}: stackstorm_version {requirement:?} is not a valid version requirement ({reason})",
        path.display()
    )
}

fn incompatible_problem(path: &Path, pack: &str, requirement: &str, actual: &str) -> String {
    format!(
        "pack {pack} requires StackStorm {requirement} (stackstorm_version in {}) but this is \
         StackStorm {actual}",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
---
name: aws
ref: aws
description: st2 content pack containing Amazon Web Services integrations.
keywords:
  - aws
  - amazon
version: 1.2.0
author: StackStorm, Inc.
email: info@stackstorm.com
python_versions:
  - \"3\"
stackstorm_version: \">=3.0.0\"
dependencies:
  - core_utils
  - StackStorm-Exchange/stackstorm-git=v1.0.0
contributors:
  - someone
";

    fn file() -> PathBuf {
        PathBuf::from("/packs/aws/pack.yaml")
    }

    fn parse(text: &str) -> Result<PackManifest, ManifestError> {
        PackManifest::parse(text, &file())
    }

    fn manifest(extra: &str) -> PackManifest {
        let text = format!("name: aws\ndescription: d\nversion: 1.0.0\nauthor: me\n{extra}");
        parse(&text).unwrap()
    }

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    #[test]
    fn parses_good_manifest() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.name, "aws");
        assert_eq!(m.r#ref.as_deref(), Some("aws"));
        assert_eq!(m.version, "1.2.0");
        assert_eq!(m.author, "StackStorm, Inc.");
        assert_eq!(m.email.as_deref(), Some("info@stackstorm.com"));
        assert_eq!(
            m.dependencies,
            ["core_utils", "StackStorm-Exchange/stackstorm-git=v1.0.0"]
        );
        assert_eq!(m.python_versions, ["3"]);
        assert_eq!(m.stackstorm_version.as_deref(), Some(">=3.0.0"));
        assert_eq!(m.file, file());
        assert_eq!(m.pack_name().unwrap().as_str(), "aws");
        assert!(m.check_compat(Some(&v("3.8.1")), false).unwrap().is_empty());
        assert!(m.check_compat(None, false).unwrap().is_empty());
    }

    #[test]
    fn optional_fields_default() {
        let m = manifest("");
        assert_eq!(m.r#ref, None);
        assert_eq!(m.email, None);
        assert!(m.dependencies.is_empty());
        assert!(m.python_versions.is_empty());
        assert_eq!(m.stackstorm_version, None);
        let m = manifest("dependencies:\nemail:\nref: \"\"\n");
        assert!(m.dependencies.is_empty());
        assert_eq!(m.email, None);
        assert_eq!(m.r#ref, None);
    }

    #[test]
    fn every_required_field_missing() {
        let fields = [
            ("name", "name: aws"),
            ("description", "description: d"),
            ("version", "version: 1.0.0"),
            ("author", "author: me"),
        ];
        for (missing, _) in fields {
            let text: String = fields
                .iter()
                .filter(|(f, _)| *f != missing)
                .map(|(_, line)| format!("{line}\n"))
                .collect();
            let err = parse(&text).unwrap_err();
            assert!(
                matches!(err, ManifestError::MissingField { field, .. } if field == missing),
                "{missing}: {err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains("/packs/aws/pack.yaml"), "{msg}");
            assert!(msg.contains(&format!("\"{missing}\" is missing")), "{msg}");

            let text = text + &format!("{missing}: \"  \"\n");
            let err = parse(&text).unwrap_err();
            assert!(
                matches!(err, ManifestError::EmptyField { field, .. } if field == missing),
                "{missing}: {err:?}"
            );
        }
        // Null counts as missing.
        assert!(matches!(
            parse("name:\ndescription: d\nversion: 1.0.0\nauthor: me\n").unwrap_err(),
            ManifestError::MissingField { field: "name", .. }
        ));
    }

    #[test]
    fn numbers_accepted_as_strings() {
        let m = parse("name: 42\nref: 7\ndescription: d\nversion: 1.0\nauthor: me\n").unwrap();
        assert_eq!(m.name, "42");
        assert_eq!(m.r#ref.as_deref(), Some("7"));
        assert_eq!(m.version, "1.0");
        // ... and the semver check then explains the number.
        let err = m.check_compat(None, false).unwrap_err();
        assert!(matches!(err, ManifestError::BadVersion { .. }));
        let msg = err.to_string();
        assert!(msg.contains("\"1.0\""), "{msg}");
        assert!(msg.contains("version: \"1.0.0\""), "{msg}");
        assert!(msg.contains("--force"), "{msg}");
        assert!(msg.contains("/packs/aws/pack.yaml"), "{msg}");
    }

    #[test]
    fn bad_semver_and_force() {
        for bad in ["1.0", "v1.0.0", "1", "1.0.0.0", "01.0.0", "latest"] {
            let mut m = manifest("");
            m.version = bad.into();
            let err = m.check_compat(None, false).unwrap_err();
            assert!(matches!(err, ManifestError::BadVersion { .. }), "{bad}");
            let warnings = m.check_compat(None, true).unwrap();
            assert_eq!(warnings.len(), 1, "{bad}");
            assert!(warnings[0].contains(&format!("{bad:?}")), "{}", warnings[0]);
            assert!(warnings[0].contains("because of --force"));
            assert!(!warnings[0].contains("pass --force"));
        }
        for good in ["1.0.0", "0.1.2-rc.1", "2.0.0+build.5"] {
            let mut m = manifest("");
            m.version = good.into();
            assert!(m.check_compat(None, false).unwrap().is_empty(), "{good}");
        }
    }

    #[test]
    fn pack_name_prefers_ref() {
        let m = manifest("ref: aws_v2\n");
        assert_eq!(m.pack_name().unwrap().as_str(), "aws_v2");
        let m = parse(
            "name: Amazon Web Services\nref: aws\ndescription: d\nversion: 1.0.0\nauthor: me\n",
        )
        .unwrap();
        assert_eq!(m.pack_name().unwrap().as_str(), "aws");
    }

    #[test]
    fn pack_name_rejects_unsafe_refs() {
        for bad in ["../x", "a/b", "Upper", "_global", "..", "a\0b"] {
            let mut m = manifest("");
            m.r#ref = Some(bad.into());
            let err = m.pack_name().unwrap_err();
            assert!(
                matches!(err, ManifestError::BadName { field: "ref", .. }),
                "{bad}: {err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains("/packs/aws/pack.yaml"), "{msg}");
            assert!(msg.contains(&format!("ref {bad:?}")), "{msg}");
            // check_compat with force does not bless the name either.
            assert!(m.check_compat(None, true).is_ok());
            assert!(m.pack_name().is_err());
        }
        let err = parse("name: My Pack\ndescription: d\nversion: 1.0.0\nauthor: me\n")
            .unwrap()
            .pack_name()
            .unwrap_err();
        assert!(matches!(err, ManifestError::BadName { field: "name", .. }));
        assert!(err.to_string().contains("add a ref"), "{err}");
    }

    #[test]
    fn python_versions() {
        for ok in [
            "python_versions: [\"3\"]",
            "python_versions:\n  - 3\n",
            "python_versions:\n  - \"2\"\n  - \"3\"\n",
            "python_versions: [3.8]",
            "python_versions: []",
        ] {
            let m = manifest(ok);
            assert!(m.check_compat(None, false).unwrap().is_empty(), "{ok}");
        }
        let m = manifest("python_versions:\n  - 2\n  - \"2.7\"\n");
        assert_eq!(m.python_versions, ["2", "2.7"]);
        let err = m.check_compat(None, false).unwrap_err();
        assert!(matches!(err, ManifestError::Python2Only { .. }));
        let msg = err.to_string();
        assert!(msg.starts_with("pack aws supports only Python 2"), "{msg}");
        assert!(msg.contains("/packs/aws/pack.yaml"), "{msg}");
        let warnings = m.check_compat(None, true).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("supports only Python 2"));
        assert!(
            manifest("python_versions: [\"30\"]")
                .check_compat(None, false)
                .is_err()
        );
    }

    #[test]
    fn stackstorm_version_requirement() {
        let m = manifest("stackstorm_version: \">=3.0.0,<3.9\"\n");
        assert!(m.check_compat(Some(&v("3.8.1")), false).unwrap().is_empty());
        // Development builds count as the release they lead to.
        assert!(m.check_compat(Some(&v("3.8.0-dev")), false).is_ok());
        let err = m.check_compat(Some(&v("3.9.0")), false).unwrap_err();
        assert!(matches!(err, ManifestError::IncompatibleStackstorm { .. }));
        let msg = err.to_string();
        assert!(msg.contains(">=3.0.0,<3.9"), "{msg}");
        assert!(msg.contains("3.9.0"), "{msg}");
        assert!(msg.contains("--force"), "{msg}");
        let warnings = m.check_compat(Some(&v("2.10.4")), true).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("requires StackStorm >=3.0.0,<3.9"));
        // Unknown st2 version: only syntax is checked.
        assert!(m.check_compat(None, false).unwrap().is_empty());
    }

    #[test]
    fn requirement_forms() {
        for (req, yes, no) in [
            (">=2.9.0", "3.0.0", "2.8.9"),
            (">=3.0.0 <3.9", "3.8.0", "3.9.0"),
            (">= 3.0.0, < 3.9", "3.8.0", "3.9.0"),
            ("==3.1.0", "3.1.0", "3.1.1"),
            ("== 3.1.0", "3.1.0", "3.2.0"),
            ("<3", "2.10.0", "3.0.0"),
        ] {
            let r = parse_requirement(req).unwrap_or_else(|e| panic!("{req}: {e}"));
            assert!(r.matches(&v(yes)), "{req} should match {yes}");
            assert!(!r.matches(&v(no)), "{req} should not match {no}");
        }
    }

    #[test]
    fn unparseable_stackstorm_version() {
        let m = manifest("stackstorm_version: \"latest please\"\n");
        let err = m.check_compat(None, false).unwrap_err();
        assert!(matches!(err, ManifestError::BadStackstormVersion { .. }));
        let msg = err.to_string();
        assert!(msg.contains("\"latest please\""), "{msg}");
        assert!(msg.contains(">=3.0.0"), "{msg}");
        assert_eq!(m.check_compat(Some(&v("3.8.0")), true).unwrap().len(), 1);
        assert!(
            manifest("stackstorm_version: \">=\"")
                .check_compat(None, false)
                .is_err()
        );
    }

    #[test]
    fn force_collects_all_problems() {
        let m = manifest("python_versions: [2]\nstackstorm_version: \"<2\"\n");
        let mut m = m;
        m.version = "1.0".into();
        let warnings = m.check_compat(Some(&v("3.8.0")), true).unwrap();
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        // Without force, the first problem is reported.
        assert!(matches!(
            m.check_compat(Some(&v("3.8.0")), false).unwrap_err(),
            ManifestError::BadVersion { .. }
        ));
    }

    #[test]
    fn yaml_syntax_error_has_line() {
        let text = "name: aws\ndescription: d\nversion: 1.0.0\n  author: [me\n";
        let err = parse(text).unwrap_err();
        let ManifestError::Yaml { line, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(matches!(line, Some(3 | 4)), "{err}");
        let msg = err.to_string();
        assert!(msg.starts_with("/packs/aws/pack.yaml: line "), "{msg}");
        assert!(msg.contains("column"), "{msg}");
    }

    #[test]
    fn wrong_types_name_field_and_line() {
        let text = "name: aws\ndescription: d\nversion: 1.0.0\nauthor: me\ndependencies: foo\n";
        let err = parse(text).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, ManifestError::Yaml { line: Some(5), .. }),
            "{err:?}"
        );
        assert!(msg.contains("dependencies"), "{msg}");
        assert!(msg.contains("line 5"), "{msg}");
        assert!(msg.contains("- item"), "{msg}");
        assert_eq!(msg.matches("line 5").count(), 1, "{msg}");

        let err = parse("name: aws\ndescription: d\nversion: true\nauthor: me\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("version"), "{msg}");
        assert!(msg.contains("a string or a number"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn not_a_mapping_and_empty() {
        for text in ["- a\n- b\n", "just a string\n", "42\n"] {
            let err = parse(text).unwrap_err();
            assert!(matches!(err, ManifestError::Yaml { .. }), "{text}: {err:?}");
            assert!(err.to_string().contains("a mapping"), "{err}");
        }
        for text in ["", "# only a comment\n", "---\n"] {
            let err = parse(text).unwrap_err();
            assert!(
                matches!(err, ManifestError::Empty { .. }),
                "{text:?}: {err:?}"
            );
        }
    }

    #[test]
    fn duplicate_keys_rejected() {
        let err =
            parse("name: a\nname: b\ndescription: d\nversion: 1.0.0\nauthor: me\n").unwrap_err();
        assert!(matches!(err, ManifestError::Yaml { .. }), "{err:?}");
        assert!(err.to_string().contains("duplicate field `name`"), "{err}");
    }

    #[test]
    fn yaml_message_does_not_repeat_position() {
        let err = parse("name: [\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(": line "), "{msg}");
        assert_eq!(msg.matches(" at line ").count(), 0, "{msg}");
    }

    #[test]
    fn dependency_specs() {
        let m = parse(GOOD).unwrap();
        let specs = m.dependency_specs().unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(
            specs[1].git_url_of(),
            Some("https://github.com/StackStorm-Exchange/stackstorm-git")
        );
        let m = manifest("dependencies:\n  - Bad-Name\n");
        let err = m.dependency_specs().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("/packs/aws/pack.yaml: dependencies: "),
            "{msg}"
        );
        assert!(msg.contains("\"Bad-Name\""), "{msg}");
    }

    #[test]
    fn load_from_directory() {
        let dir = tempfile::tempdir().unwrap();
        let err = PackManifest::load(dir.path()).unwrap_err();
        assert!(matches!(
            err,
            ManifestError::Missing {
                found_yml: false,
                ..
            }
        ));
        let msg = err.to_string();
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(
            msg.contains("every pack needs a pack.yaml at its root"),
            "{msg}"
        );

        std::fs::write(dir.path().join("pack.yml"), GOOD).unwrap();
        let err = PackManifest::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("rename it to pack.yaml"), "{err}");

        std::fs::write(dir.path().join(MANIFEST_FILE), GOOD).unwrap();
        let m = PackManifest::load(dir.path()).unwrap();
        assert_eq!(m.file, dir.path().join(MANIFEST_FILE));
        assert_eq!(m.name, "aws");

        let missing = dir.path().join("nope");
        assert!(matches!(
            PackManifest::load(&missing).unwrap_err(),
            ManifestError::NoSuchDirectory { .. }
        ));
        let a_file = dir.path().join("pack.yml");
        assert!(matches!(
            PackManifest::load(&a_file).unwrap_err(),
            ManifestError::NotADirectory { .. }
        ));
    }

    #[test]
    fn load_unreadable_and_non_utf8() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), b"name: \xff\xfe\n").unwrap();
        let err = PackManifest::load(dir.path()).unwrap_err();
        assert!(matches!(err, ManifestError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("pack.yaml"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(MANIFEST_FILE)).unwrap();
        assert!(matches!(
            PackManifest::load(dir.path()).unwrap_err(),
            ManifestError::Read { .. }
        ));
    }
}
