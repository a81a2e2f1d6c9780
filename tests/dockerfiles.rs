//! The Dockerfiles and the CI examples, checked on a machine with no Docker engine.
//!
//! Nothing here builds an image. Instead the files are read the way their consumers read them:
//! the Dockerfiles by a small parser (continuations, comments, stages, `ONBUILD`), the CI
//! examples as YAML. Every `st2pack` and `st2-pack-install` command line they run is cut out of
//! its shell script, its variables replaced by sample values, and parsed by the very clap
//! definitions the binaries use: a flag renamed or removed in the code fails here, not in a
//! user's build. The builder image's `ONBUILD` guard is run under `sh` to see it refuse an empty
//! `PACKS`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use clap::error::ErrorKind;
use serde_yaml_ng::Value;
use st2pack::cli::commands::{Command as Subcommand, PackInstallCli, St2packCli};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ------------------------------------------------------------------------------------------
// A Dockerfile parser: just enough of the format to check what a build would trip over.

/// Every Dockerfile instruction.
const INSTRUCTIONS: &str = "ADD ARG CMD COPY ENTRYPOINT ENV EXPOSE FROM HEALTHCHECK LABEL MAINTAINER \
                            ONBUILD RUN SHELL STOPSIGNAL USER VOLUME WORKDIR";

/// One instruction, its continuation lines joined.
#[derive(Debug, Clone)]
struct Instruction {
    /// 1-based line where it starts.
    line: usize,
    /// Upper-case keyword; for `ONBUILD RUN ...`, `RUN` with `onbuild` set.
    keyword: String,
    args: String,
    onbuild: bool,
}

#[derive(Debug)]
struct Stage {
    name: Option<String>,
    base: String,
    line: usize,
    instructions: Vec<Instruction>,
}

#[derive(Debug)]
struct Dockerfile {
    file: String,
    /// `ARG`s before the first `FROM`, with their defaults.
    global_args: BTreeMap<String, Option<String>>,
    stages: Vec<Stage>,
}

impl Dockerfile {
    fn at(&self, line: usize) -> String {
        format!("{}:{line}", self.file)
    }

    fn instructions(&self) -> impl Iterator<Item = &Instruction> {
        self.stages.iter().flat_map(|s| s.instructions.iter())
    }

    fn stage(&self, name: &str) -> &Stage {
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{}: no stage named {name}", self.file))
    }

    fn last_stage(&self) -> &Stage {
        self.stages.last().expect("at least one stage")
    }
}

/// Splits off the first whitespace-separated word.
fn first_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(end) => (&text[..end], text[end..].trim_start()),
        None => (text, ""),
    }
}

/// Lines joined at a trailing `\`; comment lines (and parser directives) dropped, also inside a
/// continuation, as Docker does; blank lines skipped.
fn logical_lines(file: &str, text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(body) => (body.trim_end(), true),
            None => (trimmed, false),
        };
        match &mut pending {
            Some((_, joined)) => {
                joined.push(' ');
                joined.push_str(body);
            }
            None => pending = Some((index + 1, body.to_string())),
        }
        if !continues {
            lines.extend(pending.take());
        }
    }
    assert!(
        pending.is_none(),
        "{file}: the last instruction ends with a line continuation"
    );
    lines
}

fn parse_instruction(file: &str, line: usize, text: &str) -> Instruction {
    let (keyword, args) = first_word(text);
    let check = |keyword: &str| {
        assert!(
            keyword == keyword.to_ascii_uppercase(),
            "{file}:{line}: instructions are written in upper case: {keyword}"
        );
        assert!(
            INSTRUCTIONS.split_whitespace().any(|k| k == keyword),
            "{file}:{line}: unknown instruction {keyword}"
        );
    };
    check(keyword);
    if keyword != "ONBUILD" {
        return Instruction {
            line,
            keyword: keyword.to_string(),
            args: args.to_string(),
            onbuild: false,
        };
    }
    let (inner, inner_args) = first_word(args);
    check(inner);
    assert!(
        !matches!(inner, "ONBUILD" | "FROM" | "MAINTAINER"),
        "{file}:{line}: ONBUILD {inner} is not allowed"
    );
    Instruction {
        line,
        keyword: inner.to_string(),
        args: inner_args.to_string(),
        onbuild: true,
    }
}

/// `NAME=value` pairs (or a bare `NAME`) of an `ARG` or `ENV` line, unquoted.
fn assignments(file: &str, line: usize, args: &str) -> Vec<(String, Option<String>)> {
    let commands = shell_commands(args);
    let words = commands.first().map(Vec::as_slice).unwrap_or_default();
    words
        .iter()
        .map(|word| {
            let text = expand_word(word, &|name| {
                panic!("{file}:{line}: ${name} in an ARG/ENV value")
            })
            .join(" ");
            match text.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (text, None),
            }
        })
        .collect()
}

/// Leading `--flag[=value]` words of `FROM`, `COPY`, `ADD`, `RUN`, and the rest.
fn flags(args: &str) -> (Vec<(String, String)>, &str) {
    let mut flags = Vec::new();
    let mut rest = args.trim_start();
    while rest.starts_with("--") {
        let (word, after) = first_word(rest);
        let (name, value) = word.split_once('=').unwrap_or((word, ""));
        flags.push((name.to_string(), value.to_string()));
        rest = after;
    }
    (flags, rest)
}

fn parse_dockerfile(relative: &str) -> Dockerfile {
    let text = read(relative);
    let mut dockerfile = Dockerfile {
        file: relative.to_string(),
        global_args: BTreeMap::new(),
        stages: Vec::new(),
    };
    for (line, text) in logical_lines(relative, &text) {
        let instruction = parse_instruction(relative, line, &text);
        if instruction.keyword == "FROM" && !instruction.onbuild {
            let (_, rest) = flags(&instruction.args);
            let words: Vec<&str> = rest.split_whitespace().collect();
            let (base, name) = match words.as_slice() {
                [base] => (*base, None),
                [base, as_word, name] if as_word.eq_ignore_ascii_case("AS") => {
                    (*base, Some(name.to_string()))
                }
                _ => panic!("{relative}:{line}: FROM IMAGE [AS NAME], not FROM {rest}"),
            };
            dockerfile.stages.push(Stage {
                name,
                base: base.to_string(),
                line,
                instructions: Vec::new(),
            });
        } else if let Some(stage) = dockerfile.stages.last_mut() {
            stage.instructions.push(instruction);
        } else {
            assert!(
                instruction.keyword == "ARG" && !instruction.onbuild,
                "{relative}:{line}: only ARG may come before the first FROM"
            );
            for (name, value) in assignments(relative, line, &instruction.args) {
                dockerfile.global_args.insert(name, value);
            }
        }
    }
    assert!(!dockerfile.stages.is_empty(), "{relative}: no FROM");
    dockerfile
}

/// An image reference rather than a stage name: it names a tag, a digest or a registry path
/// (or is `scratch`).
fn is_image_reference(text: &str) -> bool {
    text == "scratch" || text.contains([':', '/', '@'])
}

/// The structural checks: stage references, global ARGs used in FROM, COPY sources present in
/// the build context (when the context is this repository) and not excluded by .dockerignore.
fn check_structure(dockerfile: &Dockerfile, context: Option<&Path>) {
    let ignored: Vec<String> = match context {
        Some(context) => fs::read_to_string(context.join(".dockerignore"))
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
            .collect(),
        None => Vec::new(),
    };
    let mut names: Vec<&str> = Vec::new();
    for (index, stage) in dockerfile.stages.iter().enumerate() {
        let at = dockerfile.at(stage.line);
        for name in variables_in(&stage.base) {
            assert!(
                dockerfile.global_args.contains_key(&name),
                "{at}: FROM uses ${name}, which needs an ARG before the first FROM"
            );
        }
        assert!(
            names.contains(&stage.base.as_str()) || is_image_reference(&stage.base),
            "{at}: FROM {} is neither an earlier stage nor an image reference",
            stage.base
        );
        for instruction in &stage.instructions {
            let at = dockerfile.at(instruction.line);
            if !matches!(instruction.keyword.as_str(), "COPY" | "ADD") {
                continue;
            }
            let (flags, rest) = flags(&instruction.args);
            let words: Vec<String> = if rest.starts_with('[') {
                serde_json::from_str(rest).unwrap_or_else(|e| panic!("{at}: {e}"))
            } else {
                rest.split_whitespace().map(str::to_string).collect()
            };
            assert!(
                words.len() >= 2,
                "{at}: COPY needs a source and a destination"
            );
            let sources = &words[..words.len() - 1];
            match flags.iter().find(|(name, _)| name == "--from") {
                Some((_, from)) => {
                    let earlier = names.contains(&from.as_str())
                        || from.parse::<usize>().is_ok_and(|n| n < index);
                    assert!(
                        earlier || is_image_reference(from),
                        "{at}: --from={from} is neither an earlier stage nor an image reference"
                    );
                }
                None => {
                    let Some(context) = context else { continue };
                    for source in sources {
                        let source = source.trim_start_matches("./").trim_end_matches('/');
                        assert!(
                            context.join(source).exists(),
                            "{at}: COPY source {source} is not in the build context {}",
                            context.display()
                        );
                        for pattern in &ignored {
                            assert!(
                                source != pattern && !source.starts_with(&format!("{pattern}/")),
                                "{at}: COPY source {source} is excluded by .dockerignore ({pattern})"
                            );
                        }
                    }
                }
            }
        }
        if let Some(name) = &stage.name {
            assert!(
                !names.contains(&name.as_str()),
                "{at}: stage name {name} is used twice"
            );
            names.push(name);
        }
    }
}

/// `$NAME` and `${NAME}` references in a text.
fn variables_in(text: &str) -> Vec<String> {
    shell_commands(text)
        .iter()
        .flatten()
        .flatten()
        .filter_map(|part| match part {
            Part::Var { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// The shell command of a `RUN` (shell form; the exec form is turned into words).
fn run_script(dockerfile: &Dockerfile, instruction: &Instruction) -> String {
    let (_, rest) = flags(&instruction.args);
    if rest.starts_with('[') {
        let words: Vec<String> = serde_json::from_str(rest)
            .unwrap_or_else(|e| panic!("{}: {e}", dockerfile.at(instruction.line)));
        return words.join(" ");
    }
    rest.to_string()
}

// ------------------------------------------------------------------------------------------
// A minimal POSIX shell reader: words (quotes, escapes, `$VAR`, `${VAR}`, `$(...)`), commands
// separated by `;`, `&&`, `||`, `|`, `&`, newlines and parentheses, redirections dropped.

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Var { name: String, quoted: bool },
    Subst(String),
}

type Word = Vec<Part>;

fn push_lit(word: &mut Word, text: &str) {
    if let Some(Part::Lit(last)) = word.last_mut() {
        last.push_str(text);
    } else {
        word.push(Part::Lit(text.to_string()));
    }
}

/// Reads a `$` expansion starting at `chars[i] == '$'`; returns it and the index after it.
fn dollar(chars: &[char], i: usize, quoted: bool) -> (Part, usize) {
    let next = chars.get(i + 1).copied();
    match next {
        Some('{') => {
            let end = (i + 2..chars.len())
                .find(|&j| chars[j] == '}')
                .expect("unterminated ${");
            let inner: String = chars[i + 2..end].iter().collect();
            let name: String = inner
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (Part::Var { name, quoted }, end + 1)
        }
        Some('(') => {
            let mut depth = 0;
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    Some('(') => depth += 1,
                    Some(')') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Some(_) => {}
                    None => panic!("unterminated $("),
                }
                j += 1;
            }
            (Part::Subst(chars[i + 2..j].iter().collect()), j + 1)
        }
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
            let mut j = i + 1;
            while chars
                .get(j)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
            {
                j += 1;
            }
            let name = chars[i + 1..j].iter().collect();
            (Part::Var { name, quoted }, j)
        }
        Some(c) if c.is_ascii_digit() || "?@*#$!-".contains(c) => (
            Part::Var {
                name: c.to_string(),
                quoted,
            },
            i + 2,
        ),
        _ => (Part::Lit("$".to_string()), i + 1),
    }
}

/// The commands of a shell script, each a list of words.
fn shell_commands(script: &str) -> Vec<Vec<Word>> {
    let chars: Vec<char> = script.chars().collect();
    let mut commands: Vec<Vec<Word>> = Vec::new();
    let mut command: Vec<Word> = Vec::new();
    let mut word: Word = Vec::new();
    let mut in_word = false;
    // The next word is a redirection target, not an argument.
    let mut redirect = false;

    let finish_word =
        |word: &mut Word, in_word: &mut bool, command: &mut Vec<Word>, redirect: &mut bool| {
            if *in_word {
                if *redirect {
                    *redirect = false;
                } else {
                    command.push(std::mem::take(word));
                }
            }
            word.clear();
            *in_word = false;
        };

    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\r' => {
                finish_word(&mut word, &mut in_word, &mut command, &mut redirect);
                i += 1;
            }
            '\\' if chars.get(i + 1) == Some(&'\n') => i += 2,
            '\\' => {
                if let Some(next) = chars.get(i + 1) {
                    push_lit(&mut word, &next.to_string());
                }
                in_word = true;
                i += 2;
            }
            '\'' => {
                let end = (i + 1..chars.len())
                    .find(|&j| chars[j] == '\'')
                    .unwrap_or_else(|| panic!("unterminated ' in: {script}"));
                push_lit(&mut word, &chars[i + 1..end].iter().collect::<String>());
                in_word = true;
                i = end + 1;
            }
            '"' => {
                in_word = true;
                push_lit(&mut word, "");
                i += 1;
                loop {
                    match chars.get(i) {
                        None => panic!("unterminated \" in: {script}"),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') if chars.get(i + 1).is_some_and(|n| "$`\"\\\n".contains(*n)) => {
                            if chars[i + 1] != '\n' {
                                push_lit(&mut word, &chars[i + 1].to_string());
                            }
                            i += 2;
                        }
                        Some('$') => {
                            let (part, next) = dollar(&chars, i, true);
                            match part {
                                Part::Lit(text) => push_lit(&mut word, &text),
                                part => word.push(part),
                            }
                            i = next;
                        }
                        Some(c) => {
                            push_lit(&mut word, &c.to_string());
                            i += 1;
                        }
                    }
                }
            }
            '$' => {
                let (part, next) = dollar(&chars, i, false);
                match part {
                    Part::Lit(text) => push_lit(&mut word, &text),
                    part => word.push(part),
                }
                in_word = true;
                i = next;
            }
            '`' => {
                let end = (i + 1..chars.len())
                    .find(|&j| chars[j] == '`')
                    .unwrap_or_else(|| panic!("unterminated ` in: {script}"));
                word.push(Part::Subst(chars[i + 1..end].iter().collect()));
                in_word = true;
                i = end + 1;
            }
            '#' if !in_word => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '<' | '>' => {
                // A file descriptor number right before it belongs to the redirection.
                if in_word
                    && matches!(word.as_slice(), [Part::Lit(n)] if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
                {
                    word.clear();
                    in_word = false;
                }
                finish_word(&mut word, &mut in_word, &mut command, &mut redirect);
                i += 1;
                if chars.get(i).is_some_and(|n| *n == c) {
                    i += 1;
                }
                if chars.get(i) == Some(&'&') {
                    // `>&2`, `2>&1`, `>&-`: the target is part of the operator.
                    i += 1;
                    while chars
                        .get(i)
                        .is_some_and(|n| n.is_ascii_digit() || *n == '-')
                    {
                        i += 1;
                    }
                } else {
                    redirect = true;
                }
            }
            ';' | '&' | '|' | '(' | ')' | '\n' => {
                finish_word(&mut word, &mut in_word, &mut command, &mut redirect);
                if !command.is_empty() {
                    commands.push(std::mem::take(&mut command));
                }
                i += 1;
            }
            c => {
                push_lit(&mut word, &c.to_string());
                in_word = true;
                i += 1;
            }
        }
    }
    finish_word(&mut word, &mut in_word, &mut command, &mut redirect);
    if !command.is_empty() {
        commands.push(command);
    }
    commands
}

/// A word's fields after expansion: unquoted variables are split on whitespace, as the shell
/// does (`st2-pack-install ${PACKS}` installs each pack of the list).
fn expand_word(word: &Word, vars: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut started = false;
    for part in word {
        match part {
            Part::Lit(text) => {
                current.push_str(text);
                started = true;
            }
            Part::Var { name, quoted: true } => {
                current.push_str(&vars(name));
                started = true;
            }
            Part::Var {
                name,
                quoted: false,
            } => {
                let value = vars(name);
                if value.starts_with(char::is_whitespace) && started {
                    fields.push(std::mem::take(&mut current));
                    started = false;
                }
                for (k, piece) in value.split_whitespace().enumerate() {
                    if k > 0 {
                        fields.push(std::mem::take(&mut current));
                    }
                    current.push_str(piece);
                    started = true;
                }
                if value.ends_with(char::is_whitespace) && started {
                    fields.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            Part::Subst(text) => panic!("command substitution $({text}) in a checked command"),
        }
    }
    if started {
        fields.push(current);
    }
    fields
}

/// Words that may precede the command name itself.
fn is_prefix_word(word: &Word) -> bool {
    match word.as_slice() {
        [Part::Lit(text), ..] => {
            matches!(
                text.as_str(),
                "{" | "}"
                    | "!"
                    | "if"
                    | "then"
                    | "elif"
                    | "else"
                    | "do"
                    | "while"
                    | "until"
                    | "exec"
                    | "time"
            ) || text.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        }
        _ => false,
    }
}

/// Which of our two programs a command runs, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    St2pack,
    PackInstall,
}

/// One `st2pack` or `st2-pack-install` command found in a script, expanded.
#[derive(Debug)]
struct ToolCommand {
    tool: Tool,
    /// argv, the program's base name first.
    argv: Vec<String>,
}

fn tool_commands(script: &str, vars: &dyn Fn(&str) -> String) -> Vec<ToolCommand> {
    let mut found = Vec::new();
    for command in shell_commands(script) {
        let words: Vec<&Word> = command.iter().skip_while(|w| is_prefix_word(w)).collect();
        let Some(program) = words.first() else {
            continue;
        };
        let program = expand_word(program, &|_| String::new()).join(" ");
        let tool = match program.rsplit('/').next().unwrap_or_default() {
            "st2pack" => Tool::St2pack,
            "st2-pack-install" => Tool::PackInstall,
            _ => continue,
        };
        let mut argv = vec![match tool {
            Tool::St2pack => "st2pack".to_string(),
            Tool::PackInstall => "st2-pack-install".to_string(),
        }];
        for word in &words[1..] {
            argv.extend(expand_word(word, vars));
        }
        found.push(ToolCommand { tool, argv });
    }
    found
}

/// A command line as the binaries parse it.
#[derive(Debug)]
enum Parsed {
    PackInstall(Box<PackInstallCli>),
    St2pack(Box<St2packCli>),
    /// `--help` or `--version`.
    Info,
}

fn parse_tool_command(origin: &str, command: &ToolCommand) -> Parsed {
    let result = match command.tool {
        Tool::PackInstall => {
            PackInstallCli::try_parse_from(&command.argv).map(|c| Parsed::PackInstall(Box::new(c)))
        }
        Tool::St2pack => {
            St2packCli::try_parse_from(&command.argv).map(|c| Parsed::St2pack(Box::new(c)))
        }
    };
    let parsed = match result {
        Ok(parsed) => parsed,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            Parsed::Info
        }
        Err(e) => panic!(
            "{origin}: `{}` does not parse with the current command line:\n{e}",
            command.argv.join(" ")
        ),
    };
    let packs: &[String] = match &parsed {
        Parsed::PackInstall(cli) => &cli.install.packs,
        Parsed::St2pack(cli) => match &cli.command {
            Subcommand::Install(args) => &args.packs,
            Subcommand::Build(args) => &args.packs,
            _ => &[],
        },
        Parsed::Info => &[],
    };
    for pack in packs {
        if let Err(e) = st2pack::pack::spec::PackSpec::parse(pack) {
            panic!(
                "{origin}: `{}`: pack spec {pack:?}: {e}",
                command.argv.join(" ")
            );
        }
    }
    parsed
}

/// A variable lookup from a table of sample values, failing on a name it does not know so that a
/// new variable in an example gets a sample value here rather than an empty string.
fn sample_vars(origin: &str, table: &BTreeMap<String, String>) -> impl Fn(&str) -> String + use<> {
    let origin = origin.to_string();
    let table = table.clone();
    move |name: &str| {
        table.get(name).cloned().unwrap_or_else(|| {
            panic!("{origin}: no sample value for ${name}; add one to the test's table")
        })
    }
}

/// Every tool command a Dockerfile runs (`RUN` and `ONBUILD RUN`), parsed.
fn dockerfile_commands(
    dockerfile: &Dockerfile,
    table: &BTreeMap<String, String>,
) -> Vec<(ToolCommand, Parsed)> {
    let mut all = Vec::new();
    for instruction in dockerfile.instructions() {
        if instruction.keyword != "RUN" {
            continue;
        }
        let origin = dockerfile.at(instruction.line);
        let vars = sample_vars(&origin, table);
        for command in tool_commands(&run_script(dockerfile, instruction), &vars) {
            let parsed = parse_tool_command(&origin, &command);
            all.push((command, parsed));
        }
    }
    all
}

fn table(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ------------------------------------------------------------------------------------------
// The Dockerfiles.

/// A build stage's commands run scripts/build-static.sh, which builds the release binaries with
/// --locked for the musl target: static files that need nothing from the stage they are copied to.
fn assert_builds_static_binaries(file: &str, build_stage_runs: &str) {
    assert!(
        build_stage_runs.contains("bash scripts/build-static.sh"),
        "{file}: the build stage must run bash scripts/build-static.sh"
    );
    let script = read("scripts/build-static.sh");
    assert!(
        script.contains("target=x86_64-unknown-linux-musl")
            && script.contains("cargo build --release --locked --target \"$target\""),
        "scripts/build-static.sh: cargo build --release --locked for x86_64-unknown-linux-musl"
    );
}

#[test]
fn dockerfiles_parse_and_reference_what_exists() {
    let root = repo();
    check_structure(&parse_dockerfile("Dockerfile"), Some(&root));
    // Built from the repository root too: docker build -f builder-image/Dockerfile .
    check_structure(&parse_dockerfile("builder-image/Dockerfile"), Some(&root));
    // Built in the user's pack repository: its COPY sources are theirs.
    check_structure(&parse_dockerfile("builder-image/Dockerfile.example"), None);
}

#[test]
fn the_tool_image_builds_the_binaries_and_runs_st2pack() {
    let dockerfile = parse_dockerfile("Dockerfile");
    let runs = |stage: &Stage| -> String {
        stage
            .instructions
            .iter()
            .filter(|i| i.keyword == "RUN")
            .map(|i| run_script(&dockerfile, i))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let build = dockerfile.stage("build");
    assert_builds_static_binaries("Dockerfile", &runs(build));

    let last = dockerfile.last_stage();
    let installed = runs(last);
    for package in ["ca-certificates", "git", "python3", "python3-venv"] {
        assert!(
            installed.split_whitespace().any(|w| w == package),
            "Dockerfile: the final image should install {package}"
        );
    }
    let copies: Vec<&Instruction> = last
        .instructions
        .iter()
        .filter(|i| i.keyword == "COPY")
        .collect();
    for binary in ["st2pack", "st2-pack-install", "uv"] {
        assert!(
            copies.iter().any(|c| c
                .args
                .split_whitespace()
                .any(|w| w.ends_with(&format!("/{binary}")))),
            "Dockerfile: the final image should copy {binary} in"
        );
    }
    let entrypoint = last
        .instructions
        .iter()
        .rfind(|i| i.keyword == "ENTRYPOINT")
        .expect("Dockerfile: the final image has an ENTRYPOINT");
    let entrypoint: Vec<String> = serde_json::from_str(&entrypoint.args)
        .expect("Dockerfile: ENTRYPOINT in exec form (a JSON array)");
    assert_eq!(entrypoint, ["st2pack"]);

    // The commands it runs at build time parse.
    let commands = dockerfile_commands(&dockerfile, &table(&[]));
    assert!(
        commands.iter().any(|(c, _)| c.tool == Tool::St2pack)
            && commands.iter().any(|(c, _)| c.tool == Tool::PackInstall),
        "Dockerfile: the final image should check that both binaries run"
    );
}

#[test]
fn the_builder_image_uses_the_st2_python_and_keeps_the_upstream_interface() {
    let dockerfile = parse_dockerfile("builder-image/Dockerfile");
    assert!(
        dockerfile
            .global_args
            .get("ST2_VERSION")
            .is_some_and(|v| v.as_deref().is_some_and(|v| !v.is_empty())),
        "builder-image/Dockerfile: ARG ST2_VERSION with a default before the first FROM"
    );
    let last = dockerfile.last_stage();
    assert_eq!(
        last.name.as_deref(),
        Some("builder"),
        "builder-image/Dockerfile: the last stage (the default target) is the builder"
    );
    // The runtime stages start from the st2 image of the chosen version, so the virtualenvs are
    // built with the cluster's interpreter.
    let base = dockerfile.stage(&last.base);
    assert_eq!(base.base, "stackstorm/st2:${ST2_VERSION}");

    // The interpreter is set through the st2.conf override the installer reads.
    let env: BTreeMap<String, String> = base
        .instructions
        .iter()
        .filter(|i| i.keyword == "ENV")
        .flat_map(|i| assignments(&dockerfile.file, i.line, &i.args))
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("st2.conf");
    fs::write(&conf, "").unwrap();
    let lookup = |name: &str| env.get(name).cloned();
    let config = st2pack::config::St2Config::load(Some(&conf), &lookup).unwrap();
    assert_eq!(
        config.python_binary().as_deref(),
        Some(Path::new("/opt/stackstorm/st2/bin/python")),
        "builder-image/Dockerfile: the st2 interpreter must reach the installer via ENV"
    );
    assert_eq!(config.packs_dir(), Path::new("/opt/stackstorm/packs"));
    assert_eq!(
        config.virtualenvs_dir(),
        Path::new("/opt/stackstorm/virtualenvs")
    );

    // Both binaries are copied in from the stage that builds them.
    let copied_in = base.instructions.iter().any(|i| {
        i.keyword == "COPY"
            && i.args.contains("--from=build")
            && i.args.contains("st2pack")
            && i.args.contains("st2-pack-install")
    });
    assert!(
        copied_in,
        "builder-image/Dockerfile: st2pack and st2-pack-install are copied in"
    );
    let build_runs: String = dockerfile
        .stage("build")
        .instructions
        .iter()
        .filter(|i| i.keyword == "RUN")
        .map(|i| run_script(&dockerfile, i))
        .collect();
    assert_builds_static_binaries("builder-image/Dockerfile", &build_runs);

    // Only the last stage carries triggers: ONBUILD ARG PACKS, then the guard.
    for stage in &dockerfile.stages[..dockerfile.stages.len() - 1] {
        assert!(stage.instructions.iter().all(|i| !i.onbuild));
    }
    let triggers: Vec<&Instruction> = last.instructions.iter().filter(|i| i.onbuild).collect();
    let arg = triggers
        .iter()
        .position(|i| i.keyword == "ARG" && i.args.trim() == "PACKS")
        .expect("builder-image/Dockerfile: ONBUILD ARG PACKS");
    let guard = triggers
        .iter()
        .position(|i| i.keyword == "RUN" && i.args.contains("PACKS"))
        .expect("builder-image/Dockerfile: an ONBUILD RUN that checks PACKS");
    assert!(
        arg < guard,
        "ONBUILD ARG PACKS must come before the ONBUILD RUN that uses it"
    );

    let commands = dockerfile_commands(&dockerfile, &table(&[("PACKS", "hello_st2")]));
    assert!(commands.iter().any(|(c, _)| c.tool == Tool::PackInstall));
    assert!(commands.iter().any(|(c, _)| c.tool == Tool::St2pack));
}

/// Runs a script as Docker runs a shell-form RUN, with `PACKS` set as given or unset.
fn run_guard(script: &str, packs: Option<&str>) -> std::process::Output {
    let mut command = Command::new("sh");
    command.arg("-c").arg(script).env_remove("PACKS");
    if let Some(packs) = packs {
        command.env("PACKS", packs);
    }
    command.output().expect("run sh")
}

#[test]
fn the_builder_refuses_an_empty_packs_with_a_clear_message() {
    let dockerfile = parse_dockerfile("builder-image/Dockerfile");
    let guard = dockerfile
        .last_stage()
        .instructions
        .iter()
        .find(|i| i.onbuild && i.keyword == "RUN" && i.args.contains("PACKS"))
        .expect("builder-image/Dockerfile: an ONBUILD RUN that checks PACKS");
    let script = run_script(&dockerfile, guard);
    let script: String = script
        .split_inclusive(char::is_whitespace)
        .map(|w| {
            if w.trim_end().rsplit('/').next() == Some("st2-pack-install") {
                w.replacen(w.trim_end(), "true", 1)
            } else {
                w.to_string()
            }
        })
        .collect();

    for packs in [Some(""), None] {
        let output = run_guard(&script, packs);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "the ONBUILD guard accepted PACKS={packs:?}: {script}"
        );
        assert!(
            stderr.contains("PACKS") && stderr.contains("--build-arg PACKS="),
            "the ONBUILD guard should say how to set PACKS; it said: {stderr}"
        );
    }
    let output = run_guard(&script, Some("hello_st2"));
    assert!(
        output.status.success(),
        "the ONBUILD guard refused PACKS=hello_st2: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_builder_example_installs_its_packs_and_copies_the_trees_the_chart_copies() {
    let dockerfile = parse_dockerfile("builder-image/Dockerfile.example");
    let packs = dockerfile
        .global_args
        .get("PACKS")
        .cloned()
        .flatten()
        .expect(
            "Dockerfile.example: ARG PACKS=\"...\" before FROM, where ONBUILD ARG PACKS sees it",
        );
    let builder = dockerfile.stage("builder");
    assert_eq!(builder.base, "st2pack:builder");

    let commands = dockerfile_commands(&dockerfile, &table(&[("PACKS", &packs)]));
    let installed: Vec<&String> = commands
        .iter()
        .filter_map(|(_, parsed)| match parsed {
            Parsed::PackInstall(cli) => Some(&cli.install.packs),
            _ => None,
        })
        .flatten()
        .collect();
    let expected: Vec<&str> = packs.split_whitespace().collect();
    assert_eq!(
        installed, expected,
        "Dockerfile.example: st2-pack-install ${{PACKS}}"
    );

    let last = dockerfile.last_stage();
    assert!(
        last.base.starts_with("busybox:"),
        "a small runtime with sh and cp"
    );
    for tree in ["/opt/stackstorm/packs", "/opt/stackstorm/virtualenvs"] {
        assert!(
            last.instructions.iter().any(|i| {
                let words: Vec<&str> = i.args.split_whitespace().collect();
                i.keyword == "COPY" && words == ["--from=builder", tree, tree]
            }),
            "Dockerfile.example: COPY --from=builder {tree} {tree}"
        );
    }
}

// ------------------------------------------------------------------------------------------
// The CI examples.

/// The scripts (`run:`, `script:`, `before_script:`, `after_script:`) and the variables (`env:`,
/// `variables:`) of a CI file, wherever they are.
fn walk_ci(value: &Value, scripts: &mut Vec<String>, vars: &mut BTreeMap<String, String>) {
    match value {
        Value::Mapping(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    (Some("run" | "script" | "before_script" | "after_script"), _) => {
                        collect_strings(value, scripts)
                    }
                    (Some("env" | "variables"), Value::Mapping(entries)) => {
                        for (name, value) in entries {
                            let value = match value {
                                Value::Mapping(m) => m.get("value").cloned().unwrap_or_default(),
                                v => v.clone(),
                            };
                            if let (Some(name), Some(value)) = (name.as_str(), value.as_str()) {
                                vars.insert(name.to_string(), value.to_string());
                            }
                        }
                    }
                    _ => walk_ci(value, scripts, vars),
                }
            }
        }
        Value::Sequence(items) => items.iter().for_each(|v| walk_ci(v, scripts, vars)),
        _ => {}
    }
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Sequence(items) => items.iter().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// `${{ expression }}` replaced as GitHub Actions does before the shell sees the script.
fn github_expressions(file: &str, text: &str) -> String {
    let samples = table(&[
        ("github.sha", "abc123"),
        ("github.actor", "octocat"),
        ("github.ref_name", "main"),
        ("github.run_id", "1"),
        ("github.event.before", "0a1b2c"),
        ("secrets.GITHUB_TOKEN", "token"),
    ]);
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .unwrap_or_else(|| panic!("{file}: unterminated ${{{{"))
            + start;
        let expression = rest[start + 3..end].trim();
        out.push_str(samples.get(expression).unwrap_or_else(|| {
            panic!("{file}: no sample value for ${{{{ {expression} }}}}; add one to the test")
        }));
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The example's tool commands, parsed, with CI variables (predefined ones, then the file's own)
/// given sample values.
fn ci_commands(file: &str) -> Vec<(ToolCommand, Parsed)> {
    let text = read(file);
    let yaml: Value =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{file}: not YAML: {e}"));
    let mut scripts = Vec::new();
    let mut declared = BTreeMap::new();
    walk_ci(&yaml, &mut scripts, &mut declared);

    let mut vars = table(&[
        // GitLab's predefined variables.
        ("CI_REGISTRY", "registry.example.com"),
        ("CI_REGISTRY_IMAGE", "registry.example.com/group/mypack"),
        ("CI_REGISTRY_USER", "gitlab-ci-token"),
        ("CI_REGISTRY_PASSWORD", "secret"),
        ("CI_COMMIT_SHA", "abc123"),
        ("CI_COMMIT_BEFORE_SHA", "0a1b2c"),
        ("CI_PROJECT_DIR", "/builds/group/mypack"),
        // GitHub's.
        ("GITHUB_SHA", "abc123"),
        ("GITHUB_WORKSPACE", "/__w/mypack/mypack"),
        ("HOME", "/github/home"),
    ]);
    for (name, value) in declared {
        let value = github_expressions(file, &value);
        let lookup = sample_vars(file, &vars);
        let expanded: Vec<String> = shell_commands(&format!("\"{value}\""))
            .iter()
            .flatten()
            .flat_map(|w| expand_word(w, &lookup))
            .collect();
        vars.insert(name, expanded.join(" "));
    }

    let lookup = sample_vars(file, &vars);
    let mut all = Vec::new();
    for script in scripts {
        let script = github_expressions(file, &script);
        for command in tool_commands(&script, &lookup) {
            let parsed = parse_tool_command(file, &command);
            all.push((command, parsed));
        }
    }
    all
}

/// The example validates, then builds and pushes with the flags the README documents.
fn check_validate_then_build(file: &str, expected_tag: &str) {
    let commands = ci_commands(file);
    let validates = commands.iter().any(|(_, parsed)| {
        matches!(parsed, Parsed::St2pack(cli) if format!("{:?}", cli.command).starts_with("Validate"))
    });
    assert!(validates, "{file}: should run st2pack validate");

    let builds: Vec<_> = commands
        .iter()
        .filter_map(|(_, parsed)| match parsed {
            Parsed::St2pack(cli) => match &cli.command {
                Subcommand::Build(args) => Some(args),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(builds.len(), 1, "{file}: one st2pack build");
    let build = builds[0];
    assert_eq!(
        build.packs,
        ["."],
        "{file}: builds the pack repository itself"
    );
    assert_eq!(build.targets.tags, [expected_tag], "{file}: the image tag");
    assert_eq!(
        build.locked.as_deref(),
        Some(Path::new("st2packs.lock")),
        "{file}: builds what st2packs.lock holds"
    );
    let checks_lock = commands.iter().any(|(_, parsed)| {
        matches!(parsed, Parsed::St2pack(cli) if matches!(&cli.command, Subcommand::Lock(args) if args.check))
    });
    assert!(checks_lock, "{file}: should run st2pack lock --check");
    assert!(build.targets.push, "{file}: --push");
    let previous = expected_tag.replace(":abc123", ":0a1b2c");
    assert_eq!(
        build.cache_from,
        [previous],
        "{file}: --cache-from the previous commit's image"
    );
    assert!(
        build.registry.username.is_some() && build.registry.password_stdin,
        "{file}: --username and --password-stdin, never a password on the command line"
    );
    assert_eq!(
        build.result.digest_file.as_deref(),
        Some(Path::new("digest.txt")),
        "{file}: --digest-file"
    );
    assert_eq!(
        build.result.helm_values.as_deref(),
        Some(Path::new("st2-packs-values.yaml")),
        "{file}: --helm-values"
    );
    let text = read(file);
    for artifact in ["digest.txt", "st2-packs-values.yaml"] {
        assert!(
            text.matches(artifact).count() >= 2,
            "{file}: {artifact} should be kept as an artifact"
        );
    }
}

#[test]
fn the_github_actions_example_validates_builds_and_pushes() {
    check_validate_then_build(
        "examples/github-actions.yml",
        "ghcr.io/example-org/st2packs:abc123",
    );
}

#[test]
fn the_gitlab_ci_example_validates_builds_and_pushes() {
    check_validate_then_build(
        "examples/gitlab-ci.yml",
        "registry.example.com/group/mypack/st2packs:abc123",
    );
    let yaml: Value = serde_yaml_ng::from_str(&read("examples/gitlab-ci.yml")).unwrap();
    for job in ["validate", "build"] {
        // The tool image's entrypoint is st2pack: the runner needs it cleared to run a shell.
        let entrypoint = &yaml[job]["image"]["entrypoint"];
        assert_eq!(
            entrypoint.as_sequence().map(Vec::as_slice),
            Some(&[Value::String(String::new())][..]),
            "examples/gitlab-ci.yml: job {job} needs image.entrypoint: [\"\"]"
        );
    }
}

#[test]
fn the_helm_values_example_pins_the_packs_image_by_digest() {
    let file = "examples/helm-values.yaml";
    let example: Value = serde_yaml_ng::from_str(&read(file)).unwrap();
    let entry = &example["st2"]["packs"]["images"][0];
    for key in ["repository", "name", "tag", "pullPolicy"] {
        assert!(
            entry[key].as_str().is_some_and(|v| !v.is_empty()),
            "{file}: st2.packs.images[0].{key}"
        );
    }
    let tag = entry["tag"].as_str().unwrap();
    let (_, digest) = tag
        .split_once("@sha256:")
        .unwrap_or_else(|| panic!("{file}: the tag is pinned as <tag>@sha256:<digest>, not {tag}"));
    assert!(
        digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
        "{file}: a sha256 digest has 64 hex digits: {digest}"
    );
    assert_eq!(
        example["st2"]["packs"]["volumes"]["enabled"].as_bool(),
        Some(false),
        "{file}: st2.packs.volumes left disabled"
    );

    // The entry has the shape st2pack build prints.
    let printed = st2pack::build::helm::packs_image_values(
        "registry.example.com:5000/st2/packs",
        "1.0.0",
        &format!("sha256:{digest}"),
    );
    let printed: Value = serde_yaml_ng::from_str(&printed).unwrap();
    let keys = |v: &Value| -> Vec<String> {
        let mut keys: Vec<String> = v
            .as_mapping()
            .unwrap()
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(entry), keys(&printed["st2"]["packs"]["images"][0]));
}

// ------------------------------------------------------------------------------------------
// The Kubernetes examples: a Job and a Tekton Task that build inside the cluster.

/// Every document of a (multi-document) YAML file.
fn yaml_documents(file: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(&read(file))
        .map(|document| {
            Value::deserialize(document).unwrap_or_else(|e| panic!("{file}: not YAML: {e}"))
        })
        .filter(|document| !document.is_null())
        .collect()
}

/// The containers of a manifest, wherever they are: pod `containers` and `initContainers`,
/// Tekton `steps`.
fn containers(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Mapping(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    (Some("containers" | "initContainers" | "steps"), Value::Sequence(items)) => {
                        out.extend(items.iter().cloned())
                    }
                    _ => containers(value, out),
                }
            }
        }
        Value::Sequence(items) => items.iter().for_each(|v| containers(v, out)),
        _ => {}
    }
}

/// What a container runs, as a shell script: Tekton's `script`, the script given to
/// `command: [sh, -c]` (in `command` or `args`), or `command` + `args` as one command line.
fn container_script(file: &str, container: &Value) -> String {
    if let Some(script) = container["script"].as_str() {
        return script.to_string();
    }
    let argv: Vec<String> = ["command", "args"]
        .iter()
        .filter_map(|key| container[*key].as_sequence())
        .flatten()
        .map(|word| {
            word.as_str()
                .unwrap_or_else(|| panic!("{file}: command and args are strings"))
                .to_string()
        })
        .collect();
    let is_shell = argv
        .first()
        .is_some_and(|program| matches!(program.rsplit('/').next(), Some("sh" | "bash")));
    if is_shell {
        let script_at = argv
            .iter()
            .position(|word| word.starts_with('-') && word.contains('c'))
            .map(|flag| flag + 1);
        if let Some(script) = script_at.and_then(|at| argv.get(at)) {
            return script.clone();
        }
    }
    argv.iter()
        .map(|word| format!("'{}'", word.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A container's `env`: literal values as they are, and a sample for each `valueFrom`, with the
/// names of the variables that come from a Secret.
fn container_env(container: &Value) -> (BTreeMap<String, String>, Vec<String>) {
    let mut vars = BTreeMap::new();
    let mut from_secrets = Vec::new();
    for entry in container["env"].as_sequence().into_iter().flatten() {
        let name = entry["name"].as_str().expect("env entries have a name");
        let value = match entry["value"].as_str() {
            Some(value) => value.to_string(),
            None => {
                if !entry["valueFrom"]["secretKeyRef"].is_null() {
                    from_secrets.push(name.to_string());
                }
                format!("sample-{}", name.to_ascii_lowercase())
            }
        };
        vars.insert(name.to_string(), value);
    }
    (vars, from_secrets)
}

/// `$(params.NAME)`, `$(workspaces.NAME.path)` and `$(results.NAME.path)` replaced as Tekton does
/// before a step runs: parameters by their default in the Task, else by a sample from `samples`.
fn tekton_substitutions(file: &str, text: &str, task: &Value, samples: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find(')')
            .unwrap_or_else(|| panic!("{file}: unterminated $("))
            + start;
        let expression = &rest[start + 2..end];
        let parts: Vec<&str> = expression.split('.').collect();
        let value = match parts.as_slice() {
            ["params", name] => {
                let declared = task["spec"]["params"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .find(|p| p["name"].as_str() == Some(name))
                    .unwrap_or_else(|| panic!("{file}: $(params.{name}) is not declared"));
                match declared["default"].as_str() {
                    Some(default) => default.to_string(),
                    None => samples
                        .iter()
                        .find(|(sample, _)| sample == name)
                        .unwrap_or_else(|| {
                            panic!("{file}: no sample value for $(params.{name}); add one")
                        })
                        .1
                        .to_string(),
                }
            }
            [kind @ ("workspaces" | "results"), name, "path"] => {
                let declared = task["spec"][*kind]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .any(|p| p["name"].as_str() == Some(name));
                assert!(declared, "{file}: $({expression}) is not declared");
                match *kind {
                    "workspaces" => format!("/workspace/{name}"),
                    _ => format!("/tekton/results/{name}"),
                }
            }
            // A shell command substitution, left to the shell.
            _ => {
                out.push_str("$(");
                rest = &rest[start + 2..];
                continue;
            }
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// One in-cluster build example: its single `st2pack build`, parsed, the container that runs it,
/// and the variables that container gets from Secrets.
struct InClusterBuild {
    build: Box<st2pack::cli::build::BuildArgs>,
    container: Value,
    from_secrets: Vec<String>,
}

fn in_cluster_build(
    file: &str,
    documents: &[Value],
    substitute: &dyn Fn(&str) -> String,
    shell_vars: &[(&str, &str)],
) -> InClusterBuild {
    let mut all = Vec::new();
    for document in documents {
        containers(document, &mut all);
    }
    let mut builds = Vec::new();
    for container in &all {
        let (mut vars, from_secrets) = container_env(container);
        for value in vars.values_mut() {
            *value = substitute(value);
        }
        vars.extend(table(shell_vars));
        let script = substitute(&container_script(file, container));
        let lookup = sample_vars(file, &vars);
        for command in tool_commands(&script, &lookup) {
            if let Parsed::St2pack(cli) = parse_tool_command(file, &command)
                && let Subcommand::Build(args) = cli.command
            {
                builds.push(InClusterBuild {
                    build: args,
                    container: container.clone(),
                    from_secrets: from_secrets.clone(),
                });
            }
        }
    }
    assert_eq!(builds.len(), 1, "{file}: one st2pack build");
    builds.pop().unwrap()
}

/// What both in-cluster examples must do: push over plain HTTP to the chart's registry by its
/// service name, with the credentials from a Secret through stdin, name the image in the Helm
/// values as nodes pull it (localhost:5000, through kube-registry-proxy), keep the cache.
fn check_in_cluster_build(file: &str, found: &InClusterBuild) -> PathBuf {
    let build = &found.build;
    assert!(!build.packs.is_empty(), "{file}: builds packs");
    assert!(build.targets.push, "{file}: --push");
    assert!(build.registry.insecure, "{file}: --insecure (plain HTTP)");
    assert!(
        build.registry.username.is_some() && build.registry.password_stdin,
        "{file}: --username and --password-stdin, never a password on the command line"
    );
    assert_eq!(
        found.from_secrets,
        ["REGISTRY_USER", "REGISTRY_PASSWORD"],
        "{file}: the registry credentials come from a Secret"
    );
    let [tag] = build.targets.tags.as_slice() else {
        panic!("{file}: one --tag");
    };
    let pushed = st2pack::registry::Reference::parse(tag).unwrap();
    assert!(
        pushed.registry().ends_with("docker-registry:5000"),
        "{file}: pushes to the chart's registry service, not {tag}"
    );
    let pull_as = build
        .result
        .pull_as
        .as_deref()
        .unwrap_or_else(|| panic!("{file}: --pull-as, the name nodes pull"));
    let pull_as = st2pack::build::helm::parse_pull_as(pull_as).unwrap();
    assert_eq!(
        st2pack::build::helm::pulled_image_name(&pushed, Some(&pull_as)),
        "localhost:5000/st2packs",
        "{file}: the Helm values name the image as nodes pull it"
    );
    build
        .install
        .cache_dir
        .clone()
        .unwrap_or_else(|| panic!("{file}: --cache-dir on the persistent volume"))
}

#[test]
fn the_kubernetes_job_builds_in_the_cluster_and_pushes_to_the_charts_registry() {
    let file = "examples/kubernetes-job.yaml";
    let documents = yaml_documents(file);
    let kinds: Vec<&str> = documents
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["PersistentVolumeClaim", "Job"], "{file}");
    let job = &documents[1];
    assert_eq!(job["apiVersion"], "batch/v1");
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never", "{file}: a Job's pod");

    let found = in_cluster_build(
        file,
        &documents,
        &|text| text.to_string(),
        &[("TAG", "20260101000000")],
    );
    let cache = check_in_cluster_build(file, &found);

    // The cache directory is a mount of the PersistentVolumeClaim the file declares.
    let mount = found.container["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|m| m["mountPath"].as_str().map(Path::new) == Some(cache.as_path()))
        .unwrap_or_else(|| panic!("{file}: --cache-dir {} is a volume mount", cache.display()));
    let volume = pod["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("{file}: volume {:?}", mount["name"]));
    assert_eq!(
        volume["persistentVolumeClaim"]["claimName"], documents[0]["metadata"]["name"],
        "{file}: the cache is on the PersistentVolumeClaim"
    );

    // The build runs in the st2 runtime image with the static binaries copied in by an init
    // container, into a volume the build container mounts.
    assert!(
        found.container["image"]
            .as_str()
            .is_some_and(|image| image.starts_with("stackstorm/st2:")),
        "{file}: builds in the st2 runtime image"
    );
    let init = &pod["initContainers"][0];
    let copy = container_script(file, init);
    for binary in ["st2pack", "st2-pack-install"] {
        assert!(
            copy.contains(&format!("/{binary}'")),
            "{file}: copies {binary}"
        );
    }
    let tools = init["volumeMounts"][0]["name"].clone();
    assert!(
        found.container["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|m| m["name"] == tools),
        "{file}: the build container mounts the binaries' volume"
    );
}

#[test]
fn the_tekton_task_builds_and_pushes_in_one_step() {
    let file = "examples/tekton-task.yaml";
    let documents = yaml_documents(file);
    assert_eq!(documents.len(), 1, "{file}: one Task");
    let task = &documents[0];
    assert_eq!(task["kind"], "Task");
    assert!(
        task["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("tekton.dev/")),
        "{file}: a Tekton resource"
    );
    let steps = task["spec"]["steps"].as_sequence().unwrap();
    assert_eq!(steps.len(), 1, "{file}: one step");

    let samples = [
        (
            "packs",
            "https://github.com/example-org/stackstorm-mypack.git=v1.0.0",
        ),
        ("tag", "v1.0.0"),
    ];
    let substitute = |text: &str| tekton_substitutions(file, text, task, &samples);
    let found = in_cluster_build(file, &documents, &substitute, &[]);
    let cache = check_in_cluster_build(file, &found);
    assert_eq!(
        cache,
        Path::new("/workspace/cache"),
        "{file}: the cache on the cache workspace"
    );
    assert_eq!(
        found.build.result.digest_file.as_deref(),
        Some(Path::new("/tekton/results/digest")),
        "{file}: the digest is a result"
    );
    assert_eq!(
        found.build.result.helm_values.as_deref(),
        Some(Path::new("/tekton/results/helm-values")),
        "{file}: the Helm values are a result"
    );
}

// ------------------------------------------------------------------------------------------
// The readers above, on known input.

#[test]
fn the_shell_reader_splits_commands_quotes_and_variables() {
    let vars = table(&[("PACKS", "aws slack"), ("IMAGE", "r.example/p")]);
    let lookup = sample_vars("test", &vars);
    let script = "set -e; test -n \"$PACKS\" || { echo 'no; packs' >&2; exit 1; }\n\
                  A=1 /opt/bin/st2-pack-install ${PACKS} --json 2>&1 | tee log\n\
                  printf '%s' \"$X\" | st2pack build . \\\n  --tag \"$IMAGE:1\" > out # done";
    let found = tool_commands(script, &lookup);
    let argv: Vec<Vec<String>> = found.iter().map(|c| c.argv.clone()).collect();
    assert_eq!(
        argv,
        [
            vec!["st2-pack-install", "aws", "slack", "--json"],
            vec!["st2pack", "build", ".", "--tag", "r.example/p:1"],
        ]
    );
    assert_eq!(shell_commands("echo 'a;b' \"c|d\"").len(), 1);
    assert_eq!(
        variables_in("stackstorm/st2:${ST2_VERSION}"),
        ["ST2_VERSION"]
    );
}

#[test]
fn the_dockerfile_reader_joins_continuations_and_reads_onbuild() {
    let text = "# syntax=docker/dockerfile:1\nARG A=1\nFROM x:${A} AS one\n\
                RUN echo a \\\n  # a comment inside\n  && echo b\n\nONBUILD RUN true\n";
    let lines = logical_lines("t", text);
    assert_eq!(lines[2], (4, "RUN echo a && echo b".to_string()));
    let onbuild = parse_instruction("t", 7, &lines[3].1);
    assert!(onbuild.onbuild && onbuild.keyword == "RUN" && onbuild.args == "true");
}
