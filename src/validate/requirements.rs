//! requirements.txt: every line must be something pip accepts.
//!
//! A bad line fails the pack's virtualenv build, which in a pipeline happens after the pack has
//! been tagged; catching it here names the line. This is a pragmatic checker, not a full PEP 508
//! and PEP 440 parser: it follows pip's own reading of the file (line continuations, comments,
//! requirement-then-options) and checks each requirement's shape (name, extras, version
//! specifiers, `@ URL`, environment markers) closely enough to catch typos and stray text, while
//! accepting every form pip documents.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::{PackReport, normalize_within};

const REQUIREMENTS_FILE: &str = "requirements.txt";

pub(super) fn check(dir: &Path, report: &mut PackReport) {
    let file = Path::new(REQUIREMENTS_FILE);
    if dir.join(file).exists() {
        check_file(dir, file, report, &mut HashSet::new());
    }
}

/// Checks `file` (relative to the pack) and, recursively, the files it includes with `-r`/`-c`.
fn check_file(dir: &Path, file: &Path, report: &mut PackReport, seen: &mut HashSet<PathBuf>) {
    if !seen.insert(file.to_path_buf()) {
        return;
    }
    let text = match fs::read_to_string(dir.join(file)) {
        Ok(text) => text,
        Err(e) => {
            let message = format!("cannot read it: {e}; it must be a readable UTF-8 text file");
            return report.error(file, None, message);
        }
    };
    for (line, content) in logical_lines(&text) {
        match check_line(&content) {
            Ok(includes) => {
                for include in includes {
                    check_include(dir, file, line, &include, report, seen);
                }
            }
            Err(message) => report.error(file, Some(line), message),
        }
    }
}

/// A file named by `-r` (requirements) or `-c` (constraints).
#[derive(Debug, PartialEq, Eq)]
struct Include {
    option: &'static str,
    path: String,
}

/// pip resolves an included path against the including file's directory; it must exist.
fn check_include(
    dir: &Path,
    file: &Path,
    line: usize,
    include: &Include,
    report: &mut PackReport,
    seen: &mut HashSet<PathBuf>,
) {
    if is_url(&include.path) || include.path.contains("${") {
        return; // fetched or expanded by pip at install time
    }
    let base = file.parent().unwrap_or(Path::new(""));
    let joined = base.join(&include.path);
    let inside = normalize_within(&joined);
    let exists = match &inside {
        Some(rel) => dir.join(rel).is_file(),
        None => dir.join(&joined).is_file(),
    };
    if !exists {
        let message = format!(
            "{} {}: no such file (paths are relative to {}); add it or fix the path",
            include.option,
            include.path,
            file.display()
        );
        return report.error(file, Some(line), message);
    }
    if let Some(rel) = inside {
        check_file(dir, &rel, report, seen);
    }
}

/// The file's logical lines, as pip reads them: `\` continues a line, `#` after whitespace
/// starts a comment, blank lines are skipped. Each comes with its first physical line number.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut joined = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let comment = is_comment_line(line);
        if line.ends_with('\\') && !comment {
            let (_, buffer) = pending.get_or_insert_with(|| (i + 1, String::new()));
            buffer.push_str(line.trim_end_matches('\\'));
            continue;
        }
        match pending.take() {
            // A comment ends a continuation; pip keeps it apart so it is stripped below.
            Some((first, mut buffer)) => {
                if comment {
                    buffer.push(' ');
                }
                buffer.push_str(line);
                joined.push((first, buffer));
            }
            None => joined.push((i + 1, line.to_string())),
        }
    }
    joined.extend(pending);
    joined
        .into_iter()
        .map(|(n, line)| (n, strip_comment(&line).trim().to_string()))
        .filter(|(_, line)| !line.is_empty())
        .collect()
}

fn is_comment_line(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Drops `#...` when it starts the line or follows whitespace (so `url#egg=x` is kept).
fn strip_comment(line: &str) -> &str {
    let mut previous_is_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && previous_is_space {
            return &line[..i];
        }
        previous_is_space = c.is_whitespace();
    }
    line
}

/// One logical line: a requirement (optionally followed by per-requirement options) or option
/// lines. Returns the files it includes.
fn check_line(line: &str) -> Result<Vec<Include>, String> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let split = tokens
        .iter()
        .position(|t| t.starts_with('-'))
        .unwrap_or(tokens.len());
    let (args, options) = tokens.split_at(split);
    if !args.is_empty() {
        check_requirement(&args.join(" ")).map_err(|reason| {
            format!(
                "{line:?} is not a requirement, a pip option or a URL/path: {reason}; fix or \
                 remove the line"
            )
        })?;
    }
    check_options(options)
}

/// What a requirements file may say after `-`: pip's file options, with whether they take a value.
const OPTIONS: [(Option<&str>, &str, bool); 17] = [
    (Some("-r"), "--requirement", true),
    (Some("-c"), "--constraint", true),
    (Some("-e"), "--editable", true),
    (Some("-i"), "--index-url", true),
    (None, "--extra-index-url", true),
    (None, "--no-index", false),
    (Some("-f"), "--find-links", true),
    (None, "--trusted-host", true),
    (None, "--pre", false),
    (None, "--prefer-binary", false),
    (None, "--require-hashes", false),
    (None, "--only-binary", true),
    (None, "--no-binary", true),
    (None, "--use-feature", true),
    (None, "--hash", true),
    (None, "--global-option", true),
    (None, "--config-settings", true),
];

fn check_options(tokens: &[&str]) -> Result<Vec<Include>, String> {
    let mut includes = Vec::new();
    let mut rest = tokens.iter();
    while let Some(token) = rest.next() {
        let (long, takes_value, inline) = find_option(token)?;
        if !takes_value {
            if inline.is_some() {
                return Err(format!(
                    "pip option {long} takes no value, but got {token:?}"
                ));
            }
            continue;
        }
        let value = match inline {
            Some(value) => value,
            None => rest.next().copied().unwrap_or(""),
        };
        if value.is_empty() || value.starts_with('-') {
            return Err(format!(
                "pip option {long} needs a value, as in `{long} VALUE`"
            ));
        }
        match long {
            "--requirement" => includes.push(Include {
                option: "-r",
                path: value.to_string(),
            }),
            "--constraint" => includes.push(Include {
                option: "-c",
                path: value.to_string(),
            }),
            _ => {}
        }
    }
    Ok(includes)
}

/// `(long name, takes a value, value written in the same token)` for one option token.
fn find_option(token: &str) -> Result<(&'static str, bool, Option<&str>), String> {
    let found = if token.starts_with("--") {
        let (name, value) = match token.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (token, None),
        };
        OPTIONS
            .iter()
            .find(|(_, long, _)| *long == name)
            .map(|(_, long, takes)| (*long, *takes, value))
    } else {
        let (name, value) = token.split_at(token.len().min(2));
        OPTIONS
            .iter()
            .find(|(short, _, _)| *short == Some(name))
            .map(|(_, long, takes)| (*long, *takes, (!value.is_empty()).then_some(value)))
    };
    found.ok_or_else(|| {
        format!(
            "{token:?} is not an option pip accepts in a requirements file (those are -r, -c, \
             -e, -i/--index-url, --extra-index-url, --no-index, -f/--find-links, \
             --trusted-host, --pre, --prefer-binary, --only-binary, --no-binary, \
             --require-hashes, --hash, ...); fix or remove the line"
        )
    })
}

/// A PEP 508 requirement, or a URL or path pip installs directly.
fn check_requirement(spec: &str) -> Result<(), String> {
    if is_url_or_path(spec) {
        return Ok(());
    }
    let (requirement, marker) = split_marker(spec);
    if let Some(marker) = marker {
        markers::check(marker).map_err(|e| format!("environment marker {marker:?}: {e}"))?;
    }
    let requirement = requirement.trim();
    let name_end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
        .unwrap_or(requirement.len());
    let name = &requirement[..name_end];
    if !is_valid_name(name) {
        return Err(format!(
            "it does not start with a package name (letters, digits, '.', '_', '-'), found {:?}",
            requirement.split_whitespace().next().unwrap_or("")
        ));
    }
    let rest = skip_extras(requirement[name_end..].trim_start())?;
    if let Some(url) = rest.strip_prefix('@') {
        let url = url.trim();
        return match url.split_whitespace().count() {
            1 => Ok(()),
            0 => Err(format!("{name} @ needs a URL after the @")),
            _ => Err(format!("the URL after {name} @ contains spaces")),
        };
    }
    check_specifiers(name, rest)
}

/// Splits off `; marker`. After `@ URL` the `;` must follow whitespace (a URL may contain `;`).
fn split_marker(spec: &str) -> (&str, Option<&str>) {
    let at = spec.find('@');
    let semicolon = spec.char_indices().find(|&(i, c)| {
        c == ';' && (at.is_none_or(|a| i < a) || spec[..i].ends_with(char::is_whitespace))
    });
    match semicolon {
        Some((i, _)) => (&spec[..i], Some(&spec[i + 1..])),
        None => (spec, None),
    }
}

/// Skips `[extra, ...]` after the name, checking each extra is a name.
fn skip_extras(rest: &str) -> Result<&str, String> {
    let Some(inner) = rest.strip_prefix('[') else {
        return Ok(rest);
    };
    let (extras, after) = inner
        .split_once(']')
        .ok_or("the extras list [ is not closed with ]")?;
    for extra in extras.split(',').map(str::trim) {
        if !extra.is_empty() && !is_valid_name(extra) {
            return Err(format!("{extra:?} is not a valid extra name"));
        }
    }
    Ok(after.trim_start())
}

/// PEP 508 names: ASCII letters and digits, with `.`, `_`, `-` only between them.
fn is_valid_name(name: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    alnum(name.chars().next())
        && alnum(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Comparison operators, longest first so `===` is not read as `==`.
const OPERATORS: [&str; 8] = ["===", "~=", "==", "!=", "<=", ">=", "<", ">"];

/// `>=1.0,<2`, also in parentheses; empty means any version.
fn check_specifiers(name: &str, rest: &str) -> Result<(), String> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(());
    }
    let rest = match rest.strip_prefix('(') {
        Some(inner) => inner
            .strip_suffix(')')
            .ok_or("the version list ( is not closed with )")?,
        None => rest,
    };
    for clause in rest.split(',').map(str::trim) {
        check_clause(name, clause)?;
    }
    Ok(())
}

fn check_clause(name: &str, clause: &str) -> Result<(), String> {
    let Some(op) = OPERATORS.iter().find(|op| clause.starts_with(**op)) else {
        return Err(match clause.strip_prefix('=') {
            Some(version) => format!("pin a version with ==, as in {name}=={}", version.trim()),
            None => format!(
                "after {name:?} expected a version specifier such as >=1.0 or ==1.2.3 \
                 (or [extras], @ URL, ; marker), found {clause:?}"
            ),
        });
    };
    let version = clause[op.len()..].trim();
    if *op == "===" {
        return match version.is_empty() || version.contains(char::is_whitespace) {
            true => Err(format!("{op} needs one version string")),
            false => Ok(()),
        };
    }
    check_version(op, version)
}

/// A PEP 440-shaped version: starts with a digit (or `v`), made of version characters, with
/// `.*` only at the end of `==`/`!=`, and at least two parts after `~=`.
fn check_version(op: &str, version: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "{op}{version:?}: {version:?} is not a version like 1.2.3"
        ))
    };
    let digits = version.strip_prefix(['v', 'V']).unwrap_or(version);
    if !digits.starts_with(|c: char| c.is_ascii_digit()) {
        return bad();
    }
    let body = match version.strip_suffix(".*") {
        Some(body) if op == "==" || op == "!=" => body,
        Some(_) => {
            return Err(format!(
                "a wildcard .* is only allowed after == or !=, not {op}"
            ));
        }
        None => version,
    };
    if !body
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".+!_-".contains(c))
    {
        return bad();
    }
    if op == "~=" && !body.contains('.') {
        return Err(format!(
            "~= needs at least two version parts, as in ~={body}.0"
        ));
    }
    Ok(())
}

/// Lines pip installs from a location instead of an index.
fn is_url_or_path(spec: &str) -> bool {
    let first = spec.split([' ', ';']).next().unwrap_or(spec);
    let archive = [".whl", ".tar.gz", ".tgz", ".tar.bz2", ".tar", ".zip"]
        .iter()
        .any(|ext| first.ends_with(ext));
    is_url(first)
        || ["git+", "hg+", "svn+", "bzr+", "file:"]
            .iter()
            .any(|p| first.starts_with(p))
        || first.starts_with(['.', '/', '~'])
        || first.contains(['/', '\\'])
        || archive
}

/// `scheme://...`
fn is_url(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    })
}

/// PEP 508 environment markers: `python_version < "3.8" and (os_name == 'nt' or extra == "x")`.
mod markers {
    /// Marker variables, with the dotted and legacy spellings `packaging` still accepts.
    const VARIABLES: [&str; 19] = [
        "python_version",
        "python_full_version",
        "os_name",
        "os.name",
        "sys_platform",
        "sys.platform",
        "platform_release",
        "platform_system",
        "platform_version",
        "platform.version",
        "platform_machine",
        "platform.machine",
        "platform_python_implementation",
        "platform.python_implementation",
        "python_implementation",
        "implementation_name",
        "implementation_version",
        "extra",
        "dependency_groups",
    ];

    #[derive(Debug, PartialEq)]
    enum Token<'a> {
        Open,
        Close,
        And,
        Or,
        Op,
        Value(&'a str),
    }

    pub(super) fn check(marker: &str) -> Result<(), String> {
        let tokens = tokenize(marker)?;
        let mut parser = Parser { tokens, at: 0 };
        parser.or_expr()?;
        match parser.tokens.get(parser.at) {
            None => Ok(()),
            Some(token) => Err(format!(
                "unexpected {} after a complete marker",
                describe(token)
            )),
        }
    }

    fn describe(token: &Token<'_>) -> String {
        match token {
            Token::Open => "(".to_string(),
            Token::Close => ")".to_string(),
            Token::And => "and".to_string(),
            Token::Or => "or".to_string(),
            Token::Op => "a comparison operator".to_string(),
            Token::Value(v) => format!("{v:?}"),
        }
    }

    fn tokenize(text: &str) -> Result<Vec<Token<'_>>, String> {
        let mut tokens = Vec::new();
        let mut rest = text.trim_start();
        while let Some(c) = rest.chars().next() {
            let (token, len) = next_token(rest, c)?;
            tokens.push(token);
            rest = rest[len..].trim_start();
        }
        Ok(tokens)
    }

    fn next_token(rest: &str, c: char) -> Result<(Token<'_>, usize), String> {
        if c == '(' || c == ')' {
            let token = if c == '(' { Token::Open } else { Token::Close };
            return Ok((token, 1));
        }
        if c == '"' || c == '\'' {
            let end = rest[1..]
                .find(c)
                .ok_or_else(|| format!("a string starting with {c} is not closed"))?;
            return Ok((Token::Value(&rest[1..=end]), end + 2));
        }
        if let Some(op) = super::OPERATORS.iter().find(|op| rest.starts_with(**op)) {
            return Ok((Token::Op, op.len()));
        }
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(rest.len());
        let word = &rest[..len];
        match word {
            "" => Err(format!("unexpected {c:?}")),
            "and" => Ok((Token::And, len)),
            "or" => Ok((Token::Or, len)),
            "in" => Ok((Token::Op, len)),
            "not" => not_in(rest),
            w if VARIABLES.contains(&w) => Ok((Token::Value(w), len)),
            w => Err(format!(
                "{w:?} is not a marker variable (such as python_version, sys_platform, \
                 platform_system) or a quoted string"
            )),
        }
    }

    fn not_in(rest: &str) -> Result<(Token<'_>, usize), String> {
        let after = &rest[3..];
        let spaces = after.len() - after.trim_start().len();
        match after.trim_start().strip_prefix("in") {
            Some(_) if spaces > 0 => Ok((Token::Op, 3 + spaces + 2)),
            _ => Err("\"not\" must be followed by \"in\"".to_string()),
        }
    }

    struct Parser<'a> {
        tokens: Vec<Token<'a>>,
        at: usize,
    }

    impl Parser<'_> {
        fn or_expr(&mut self) -> Result<(), String> {
            self.and_expr()?;
            while self.eat(&Token::Or) {
                self.and_expr()?;
            }
            Ok(())
        }

        fn and_expr(&mut self) -> Result<(), String> {
            self.atom()?;
            while self.eat(&Token::And) {
                self.atom()?;
            }
            Ok(())
        }

        /// `( expr )` or `value op value`.
        fn atom(&mut self) -> Result<(), String> {
            if self.eat(&Token::Open) {
                self.or_expr()?;
                return match self.eat(&Token::Close) {
                    true => Ok(()),
                    false => Err("a ( is not closed with )".to_string()),
                };
            }
            self.value()?;
            if !self.eat(&Token::Op) {
                return Err("expected a comparison such as python_version >= \"3.8\"".into());
            }
            self.value()
        }

        fn value(&mut self) -> Result<(), String> {
            match self.tokens.get(self.at) {
                Some(Token::Value(_)) => {
                    self.at += 1;
                    Ok(())
                }
                _ => Err("expected a marker variable or a quoted string".to_string()),
            }
        }

        fn eat(&mut self, token: &Token<'_>) -> bool {
            let found = self.tokens.get(self.at) == Some(token);
            self.at += usize::from(found);
            found
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) {
        assert!(check_line(line).is_ok(), "{line}: {:?}", check_line(line));
    }

    fn bad(line: &str, needle: &str) {
        match check_line(line) {
            Ok(_) => panic!("accepted {line:?}"),
            Err(message) => assert!(message.contains(needle), "{line}: {message}"),
        }
    }

    #[test]
    fn requirements_pip_accepts_pass() {
        for line in [
            "requests",
            "requests==2.31.0",
            "requests >= 2.0, < 3",
            "requests (>=2.0,<3)",
            "Requests_OAuthlib.x-y",
            "requests[security,socks]>=2.8.1",
            "requests [ security ] == 2.8.*",
            "pyyaml~=6.0",
            "pkg===weird-version",
            "pkg!=1.0.post1,>=1.0a1,<2.0.dev3",
            "pkg==v1.0+local.7",
            "pkg==1!2.0",
            "six; python_version < \"3\"",
            "six ; python_version >= '3.8' and (sys_platform == 'linux' or os_name != \"nt\")",
            "pywin32; platform_system == \"Windows\" and extra not in 'a b'",
            "pkg; 'linux' in sys_platform",
            "pkg @ https://example.com/pkg-1.0.tar.gz",
            "pkg[extra] @ git+https://example.com/pkg.git@v1 ; python_version >= '3'",
            "https://example.com/pkg-1.0-py3-none-any.whl",
            "git+https://github.com/org/repo.git@v1#egg=repo",
            "./vendor/pkg",
            "../pkg-1.0.tar.gz",
            "pkg-1.0-py3-none-any.whl",
            "file:///opt/wheels/pkg.whl",
        ] {
            ok(line);
        }
    }

    #[test]
    fn options_pip_accepts_pass_and_report_includes() {
        for line in [
            "-i https://pypi.example.com/simple",
            "--index-url=https://pypi.example.com/simple",
            "--extra-index-url https://x --trusted-host x",
            "--no-index",
            "-f ./wheels",
            "--find-links=/wheels",
            "--pre",
            "--only-binary :all:",
            "-e git+https://example.com/repo.git#egg=repo",
            "-e ./local",
            "requests==2.31.0 --hash=sha256:abc --hash sha256:def",
        ] {
            ok(line);
        }
        let includes = check_line("-r base.txt -c constraints.txt").expect("options");
        assert_eq!(
            includes,
            [
                Include {
                    option: "-r",
                    path: "base.txt".into()
                },
                Include {
                    option: "-c",
                    path: "constraints.txt".into()
                }
            ]
        );
        let includes = check_line("-rbase.txt").expect("short form");
        assert_eq!(includes[0].path, "base.txt");
        let includes = check_line("--requirement=base.txt").expect("long form");
        assert_eq!(includes[0].path, "base.txt");
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        bad("this is not a requirement", "expected a version specifier");
        bad("==1.0", "does not start with a package name");
        bad("requests=2.0", "pin a version with ==, as in requests==2.0");
        bad("requests>=", "is not a version");
        bad("requests>=two", "is not a version");
        bad("requests>=1.*", "only allowed after == or !=");
        bad("requests~=2", "at least two version parts");
        bad("requests 2.0", "expected a version specifier");
        bad("requests[secu rity]", "not a valid extra name");
        bad("requests[security", "not closed");
        bad("requests (>=1.0", "not closed");
        bad("pkg @", "needs a URL");
        bad("_private", "does not start with a package name");
        bad("pkg; python_version", "expected a comparison");
        bad("pkg; python_versio < '3'", "not a marker variable");
        bad("pkg; python_version < '3", "not closed");
        bad(
            "pkg; python_version < '3' and",
            "expected a marker variable",
        );
        bad("pkg; (python_version < '3'", "( is not closed");
        bad("pkg; python_version < '3' '4'", "unexpected");
        bad("pkg; extra not 'x'", "followed by \"in\"");
        bad("--index-url", "needs a value");
        bad("-r", "needs a value");
        bad("--pre=yes", "takes no value");
        bad("--upgrade", "not an option pip accepts");
        bad("requests --frobnicate", "not an option pip accepts");
    }

    #[test]
    fn logical_lines_follow_pips_reading() {
        let text = "\u{feff}# comment\n\nrequests \\\n  >=2.0 \\\n  --hash=sha256:abc\n\
                    six # trailing comment\n  # indented comment\n\
                    git+https://x/r.git#egg=r\nlast \\\n";
        assert_eq!(
            logical_lines(text),
            [
                (3, "requests   >=2.0   --hash=sha256:abc".to_string()),
                (6, "six".to_string()),
                (8, "git+https://x/r.git#egg=r".to_string()),
                (9, "last".to_string()),
            ]
        );
        // A comment line ends a continuation and is itself dropped.
        assert_eq!(
            logical_lines("a \\\n# c\nb\n"),
            [(1, "a".to_string()), (3, "b".to_string())]
        );
    }

    fn run(files: &[(&str, &str)]) -> Vec<(String, Option<usize>, String)> {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, text).expect("write");
        }
        let mut report = PackReport::new(Path::new("p"));
        check(dir.path(), &mut report);
        report
            .errors
            .into_iter()
            .map(|p| (p.file.display().to_string(), p.line, p.message))
            .collect()
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
        let found = run(&[(
            "requirements.txt",
            "-r https://x/reqs.txt\n-r ${DIR}/r.txt\n",
        )]);
        assert!(found.is_empty(), "{found:?}");
    }
}
