//! Action, sensor, rule, alias and policy metadata, and config.schema.yaml.
//!
//! StackStorm only reads these files when the pack is registered in the cluster, long after the
//! image is built and pushed; a typo there surfaces as a registration error in a pod log, or as
//! an action that fails the first time someone runs it. Checking them here moves that failure to
//! the pipeline. The checks are the ones registration depends on (the file parses, the fields it
//! keys on are there, the entry point it will execute exists), not a full schema validation.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use super::{PackReport, normalize_within};

/// Extensions StackStorm's metadata loader accepts.
const METADATA_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// Runners that execute a file named by `entry_point`; the others (`local-shell-cmd`,
/// `http-request`, `noop`, ...) run what their parameters say and may omit it.
const ENTRY_POINT_RUNNERS: [&str; 9] = [
    "python-script",
    "local-shell-script",
    "remote-shell-script",
    "orquesta",
    "action-chain",
    "mistral-v2",
    "winrm-ps-script",
    "windows-script",
    "cloudslang",
];

/// Directories whose files only need to parse: their content is checked by StackStorm against
/// other packs' actions and triggers, which are not available here.
const PARSE_ONLY_DIRS: [&str; 3] = ["rules", "aliases", "policies"];

const CONFIG_SCHEMA: &str = "config.schema.yaml";

pub(super) fn check(dir: &Path, report: &mut PackReport) {
    for file in metadata_files(dir, "actions", report) {
        check_action(dir, &file, report);
    }
    for file in metadata_files(dir, "sensors", report) {
        check_sensor(dir, &file, report);
    }
    for sub in PARSE_ONLY_DIRS {
        for file in metadata_files(dir, sub, report) {
            load_mapping(dir, &file, report);
        }
    }
    check_config_schema(dir, report);
}

/// A metadata file that parsed as a mapping, with its text kept for finding lines.
struct Document {
    file: PathBuf,
    text: String,
    map: Mapping,
}

impl Document {
    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    fn line_of(&self, key: &str) -> Option<usize> {
        key_line(&self.text, key)
    }
}

/// `sub/*.{yaml,yml,json}` under `dir`, relative to it, in name order. StackStorm does not look
/// into subdirectories (workflows under `actions/workflows/` are reached via entry points).
fn metadata_files(dir: &Path, sub: &str, report: &mut PackReport) -> Vec<PathBuf> {
    let entries = match fs::read_dir(dir.join(sub)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            report.error(
                sub,
                None,
                format!("cannot list {sub}/: {e}; {}", dir_hint(sub)),
            );
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| Path::new(sub).join(entry.file_name()))
        .filter(|rel| has_metadata_extension(rel) && dir.join(rel).is_file())
        .collect();
    files.sort();
    files
}

fn dir_hint(sub: &str) -> String {
    format!("{sub}/ must be a readable directory of metadata files")
}

fn has_metadata_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| METADATA_EXTENSIONS.contains(&e))
}

fn check_action(dir: &Path, file: &Path, report: &mut PackReport) {
    let Some(doc) = load_mapping(dir, file, report) else {
        return;
    };
    required_string(&doc, "name", report);
    let runner = required_string(&doc, "runner_type", report);
    let needs_entry_point = runner.is_some_and(|r| ENTRY_POINT_RUNNERS.contains(&r));
    check_entry_point(dir, &doc, "actions", needs_entry_point, report);
}

fn check_sensor(dir: &Path, file: &Path, report: &mut PackReport) {
    let Some(doc) = load_mapping(dir, file, report) else {
        return;
    };
    required_string(&doc, "class_name", report);
    check_entry_point(dir, &doc, "sensors", true, report);
}

/// The string value of `key`, or an error saying it is missing, empty or not a string.
fn required_string<'a>(doc: &'a Document, key: &str, report: &mut PackReport) -> Option<&'a str> {
    let problem = match doc.get(key) {
        None | Some(Value::Null) => format!(
            "required field \"{key}\" is missing; add it (StackStorm registers the file by it)"
        ),
        Some(Value::String(s)) if s.trim().is_empty() => {
            format!("required field \"{key}\" is empty; give it a value")
        }
        Some(Value::String(s)) => return Some(s),
        Some(other) => format!(
            "\"{key}\" must be a string, but it is a {}; quote it",
            kind(other)
        ),
    };
    report.error(&doc.file, doc.line_of(key), problem);
    None
}

/// Checks that the file `entry_point` names exists; relative to `base` (`actions` or `sensors`),
/// as StackStorm resolves it.
fn check_entry_point(
    dir: &Path,
    doc: &Document,
    base: &str,
    required: bool,
    report: &mut PackReport,
) {
    let line = doc.line_of("entry_point");
    let entry_point = match doc.get("entry_point") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.trim(),
        Some(other) => {
            let message = format!(
                "\"entry_point\" must be a string (a path relative to {base}/), but it is a {}",
                kind(other)
            );
            return report.error(&doc.file, line, message);
        }
    };
    if entry_point.is_empty() {
        if required {
            let message = format!(
                "\"entry_point\" is missing; name the file to run, relative to {base}/ \
                 (such as {})",
                if base == "sensors" {
                    "my_sensor.py"
                } else {
                    "my_action.py"
                }
            );
            report.error(&doc.file, line, message);
        }
        return;
    }
    if let Some(target) = resolve_entry_point(dir, doc, base, entry_point, line, report) {
        parse_workflow(dir, &target, report);
    }
}

/// The entry point's path inside the pack, or an error when it is outside or missing.
fn resolve_entry_point(
    dir: &Path,
    doc: &Document,
    base: &str,
    entry_point: &str,
    line: Option<usize>,
    report: &mut PackReport,
) -> Option<PathBuf> {
    let Some(target) = normalize_within(&Path::new(base).join(entry_point)) else {
        let message = format!(
            "entry_point {entry_point:?} points outside the pack; an image holds only the \
             pack's own files: make it a path relative to {base}/ inside the pack"
        );
        report.error(&doc.file, line, message);
        return None;
    };
    let absolute = dir.join(&target);
    if absolute.is_file() {
        return Some(target);
    }
    let problem = if absolute.is_dir() {
        "is a directory, not a file"
    } else {
        "does not exist"
    };
    let message = format!(
        "entry_point {entry_point:?}: {} {problem}; entry points are relative to {base}/: \
         add the file or fix the path",
        target.display()
    );
    report.error(&doc.file, line, message);
    None
}

/// Orquesta and action-chain entry points are YAML themselves: a syntax error there only shows
/// when the workflow first runs.
fn parse_workflow(dir: &Path, target: &Path, report: &mut PackReport) {
    let is_yaml = target
        .extension()
        .is_some_and(|e| e == "yaml" || e == "yml");
    if is_yaml {
        load_mapping(dir, target, report);
    }
}

fn check_config_schema(dir: &Path, report: &mut PackReport) {
    if !dir.join(CONFIG_SCHEMA).exists() {
        return;
    }
    let Some(doc) = load_mapping(dir, Path::new(CONFIG_SCHEMA), report) else {
        return;
    };
    for (key, value) in &doc.map {
        if !value.is_mapping() {
            let key = describe_key(key);
            let message = format!(
                "option \"{key}\" must map to its schema (a mapping such as \
                 `type: string` and `description: ...`), but it is a {}",
                kind(value)
            );
            report.error(&doc.file, key_line(&doc.text, &key), message);
        }
    }
}

/// Reads and parses `file` (relative to `dir`) as a mapping, recording any problem.
fn load_mapping(dir: &Path, file: &Path, report: &mut PackReport) -> Option<Document> {
    let text = match fs::read_to_string(dir.join(file)) {
        Ok(text) => text,
        Err(e) => {
            let message = format!("cannot read it: {e}; it must be a readable UTF-8 text file");
            report.error(file, None, message);
            return None;
        }
    };
    let is_json = file.extension().is_some_and(|e| e == "json");
    let parsed = if is_json {
        parse_json(&text)
    } else {
        parse_yaml(&text)
    };
    let value = match parsed {
        Ok(value) => value,
        Err((line, message)) => {
            report.error(file, line, message);
            return None;
        }
    };
    match value {
        Value::Mapping(map) => Some(Document {
            file: file.to_path_buf(),
            text,
            map,
        }),
        other => {
            let found = match other {
                Value::Null => "empty".to_string(),
                other => format!("a {}", kind(&other)),
            };
            let message =
                format!("is {found}, but StackStorm expects a mapping of fields (key: value)");
            report.error(file, None, message);
            None
        }
    }
}

type ParseError = (Option<usize>, String);

fn parse_yaml(text: &str) -> Result<Value, ParseError> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        let location = e.location();
        let mut message = e.to_string();
        if let Some(loc) = &location {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            message = message.replacen(&suffix, "", 1);
        }
        syntax_error(location.map(|l| (l.line(), l.column())), &message, "YAML")
    })
}

fn parse_json(text: &str) -> Result<Value, ParseError> {
    serde_json::from_str(text).map_err(|e| {
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = e.to_string().replacen(&suffix, "", 1);
        let position = (e.line() > 0).then(|| (e.line(), e.column()));
        syntax_error(position, &message, "JSON")
    })
}

fn syntax_error(position: Option<(usize, usize)>, message: &str, format: &str) -> ParseError {
    let column = position.map_or(String::new(), |(_, c)| format!(" (column {c})"));
    (
        position.map(|(l, _)| l),
        format!("invalid {format}: {message}{column}; check indentation, quoting and colons"),
    )
}

/// The 1-based line where top-level `key:` is written, found textually because the parsed
/// value does not keep positions. Keys indented or written in flow style are not found.
fn key_line(text: &str, key: &str) -> Option<usize> {
    let quoted = [key.to_string(), format!("\"{key}\""), format!("'{key}'")];
    text.lines()
        .position(|line| {
            let line = line.strip_prefix('\u{feff}').unwrap_or(line);
            quoted.iter().any(|k| {
                line.strip_prefix(k.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with(':'))
            })
        })
        .map(|i| i + 1)
}

fn describe_key(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => kind(other).to_string(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Sequence(_) => "list",
        Value::Mapping(_) => "mapping",
        Value::Tagged(_) => "tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::super::Problem;
    use super::*;

    fn pack(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, text).expect("write");
        }
        dir
    }

    fn errors(files: &[(&str, &str)]) -> Vec<(String, Option<usize>, String)> {
        let dir = pack(files);
        let mut report = PackReport::new(Path::new("p"));
        check(dir.path(), &mut report);
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        report
            .errors
            .into_iter()
            .map(
                |Problem {
                     file,
                     line,
                     message,
                 }| (file.display().to_string(), line, message),
            )
            .collect()
    }

    fn assert_one(
        found: &[(String, Option<usize>, String)],
        file: &str,
        line: Option<usize>,
        needle: &str,
    ) {
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, file, "{found:?}");
        assert_eq!(found[0].1, line, "{found:?}");
        assert!(found[0].2.contains(needle), "{found:?}");
    }

    const ACTION: &str = "name: a\nrunner_type: python-script\nentry_point: a.py\n";

    #[test]
    fn good_metadata_passes() {
        let found = errors(&[
            ("actions/a.yaml", ACTION),
            ("actions/a.py", ""),
            ("actions/b.yml", "name: b\nrunner_type: local-shell-cmd\n"),
            (
                "actions/c.json",
                "{\"name\": \"c\", \"runner_type\": \"noop\"}",
            ),
            ("actions/notes.txt", "not metadata"),
            ("actions/lib/helper.yaml", ": not read"),
            (
                "actions/wf.yaml",
                "name: wf\nrunner_type: orquesta\nentry_point: workflows/wf.yaml\n",
            ),
            ("actions/workflows/wf.yaml", "version: 1.0\ntasks: {}\n"),
            ("sensors/s.yaml", "class_name: S\nentry_point: s.py\n"),
            ("sensors/s.py", ""),
            ("rules/r.yaml", "name: r\n"),
            ("aliases/x.yaml", "name: x\n"),
            ("policies/p.yaml", "name: p\n"),
            ("config.schema.yaml", "region:\n  type: string\n"),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let found = errors(&[(
            "actions/a.yaml",
            "name: a\nrunner_type: [x\nentry_point: a.py\n",
        )]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "p/actions/a.yaml");
        assert!(found[0].1.is_some(), "{found:?}");
        assert!(found[0].2.starts_with("invalid YAML: "), "{found:?}");
        // The position is in the line field, not repeated in the message.
        assert_eq!(found[0].1, Some(3), "{found:?}");
        assert!(!found[0].2.contains("at line 3"), "{found:?}");
        let found = errors(&[("rules/r.yaml", "a: 1\n  b: 2\n")]);
        assert_one(&found, "p/rules/r.yaml", Some(2), "invalid YAML");
        let found = errors(&[("actions/c.json", "{\n\"name\": \"c\",\n}")]);
        assert_one(&found, "p/actions/c.json", Some(3), "invalid JSON");
    }

    #[test]
    fn non_mappings_and_empty_files_are_refused() {
        assert_one(
            &errors(&[("aliases/x.yaml", "")]),
            "p/aliases/x.yaml",
            None,
            "is empty",
        );
        assert_one(
            &errors(&[("policies/x.yaml", "- a\n")]),
            "p/policies/x.yaml",
            None,
            "is a list",
        );
    }

    #[test]
    fn actions_need_name_and_runner_type_as_strings() {
        let found = errors(&[("actions/a.yaml", "description: x\n")]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].2.contains("\"name\" is missing"), "{found:?}");
        assert!(
            found[1].2.contains("\"runner_type\" is missing"),
            "{found:?}"
        );
        let found = errors(&[("actions/a.yaml", "name: [a]\nrunner_type: noop\n")]);
        assert_one(
            &found,
            "p/actions/a.yaml",
            Some(1),
            "must be a string, but it is a list",
        );
        let found = errors(&[("actions/a.yaml", "name: a\nrunner_type: \"\"\n")]);
        assert_one(
            &found,
            "p/actions/a.yaml",
            Some(2),
            "\"runner_type\" is empty",
        );
    }

    #[test]
    fn entry_points_must_exist_under_actions() {
        let found = errors(&[("actions/a.yaml", ACTION)]);
        assert_one(
            &found,
            "p/actions/a.yaml",
            Some(3),
            "actions/a.py does not exist",
        );
        let found = errors(&[("actions/a.yaml", ACTION), ("a.py", "")]);
        assert_one(&found, "p/actions/a.yaml", Some(3), "does not exist");
        let found = errors(&[("actions/a.yaml", ACTION), ("actions/a.py/x", "")]);
        assert_one(&found, "p/actions/a.yaml", Some(3), "is a directory");
        let outside = "name: a\nrunner_type: python-script\nentry_point: ../../x.py\n";
        assert_one(
            &errors(&[("actions/a.yaml", outside)]),
            "p/actions/a.yaml",
            Some(3),
            "outside the pack",
        );
        let absolute = "name: a\nrunner_type: python-script\nentry_point: /bin/true\n";
        assert_one(
            &errors(&[("actions/a.yaml", absolute)]),
            "p/actions/a.yaml",
            Some(3),
            "outside the pack",
        );
        // Inside the pack but outside actions/ is how some packs share code.
        let shared = "name: a\nrunner_type: python-script\nentry_point: ../lib/a.py\n";
        assert!(errors(&[("actions/a.yaml", shared), ("lib/a.py", "")]).is_empty());
    }

    #[test]
    fn only_file_running_runners_need_an_entry_point() {
        let found = errors(&[("actions/a.yaml", "name: a\nrunner_type: python-script\n")]);
        assert_one(
            &found,
            "p/actions/a.yaml",
            None,
            "\"entry_point\" is missing",
        );
        let found = errors(&[(
            "actions/a.yaml",
            "name: a\nrunner_type: orquesta\nentry_point: \"\"\n",
        )]);
        assert_one(
            &found,
            "p/actions/a.yaml",
            Some(3),
            "\"entry_point\" is missing",
        );
        for runner in [
            "local-shell-cmd",
            "remote-shell-cmd",
            "http-request",
            "noop",
            "inquirer",
            "custom",
        ] {
            let text = format!("name: a\nrunner_type: {runner}\nentry_point: \"\"\n");
            assert!(errors(&[("actions/a.yaml", &text)]).is_empty(), "{runner}");
        }
        let found = errors(&[(
            "actions/a.yaml",
            "name: a\nrunner_type: noop\nentry_point: 3\n",
        )]);
        assert_one(&found, "p/actions/a.yaml", Some(3), "must be a string");
    }

    #[test]
    fn workflow_entry_points_are_parsed() {
        let found = errors(&[
            (
                "actions/wf.yaml",
                "name: wf\nrunner_type: orquesta\nentry_point: workflows/wf.yaml\n",
            ),
            (
                "actions/workflows/wf.yaml",
                "version: 1.0\ntasks:\n  a: [\n",
            ),
        ]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "p/actions/workflows/wf.yaml");
        assert!(found[0].2.contains("invalid YAML"), "{found:?}");
    }

    #[test]
    fn sensors_need_class_name_and_an_existing_entry_point() {
        let found = errors(&[("sensors/s.yaml", "entry_point: s.py\n")]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].2.contains("\"class_name\" is missing"),
            "{found:?}"
        );
        assert!(
            found[1].2.contains("sensors/s.py does not exist"),
            "{found:?}"
        );
        assert_eq!(found[1].1, Some(1));
        let found = errors(&[("sensors/s.yaml", "class_name: S\n")]);
        assert_one(
            &found,
            "p/sensors/s.yaml",
            None,
            "\"entry_point\" is missing",
        );
    }

    #[test]
    fn config_schema_options_must_be_mappings() {
        let text = "---\nregion:\n  type: string\nvolume: 11\n\"quoted\": [a]\n";
        let found = errors(&[("config.schema.yaml", text)]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].1, Some(4));
        assert!(found[0].2.contains("option \"volume\""), "{found:?}");
        assert!(found[0].2.contains("but it is a number"), "{found:?}");
        assert_eq!(found[1].1, Some(5));
        let found = errors(&[("config.schema.yaml", "a:\n  type: string\n b: x\n")]);
        assert_one(&found, "p/config.schema.yaml", Some(3), "invalid YAML");
        let found = errors(&[("config.schema.yaml", "just a string\n")]);
        assert_one(&found, "p/config.schema.yaml", None, "is a string");
    }

    #[test]
    fn duplicate_keys_are_syntax_errors() {
        let found = errors(&[("rules/r.yaml", "name: a\nname: b\n")]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].2.contains("duplicate"), "{found:?}");
    }

    #[test]
    fn key_line_finds_top_level_keys_only() {
        let text = "\u{feff}name: a\nparameters:\n  entry_point: x\n\"entry_point\" : y\n";
        assert_eq!(key_line(text, "name"), Some(1));
        assert_eq!(key_line(text, "entry_point"), Some(4));
        assert_eq!(key_line(text, "parameters"), Some(2));
        assert_eq!(key_line(text, "param"), None);
    }
}
