//! `st2pack validate [DIR...]`: check pack directories the way a release pipeline needs, and
//! report every problem of every pack in one run.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::pack::requirements::Policy;
use crate::validate::{self, PackReport, Problem};

#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Pack directories (each holding a pack.yaml).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dirs: Vec<PathBuf>,

    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Accept index and trust options (--index-url, --find-links, ...), URL includes and
    /// ${VARIABLE} references in the packs' requirements files, as the installers' flag of the
    /// same name does.
    #[arg(long)]
    pub allow_pack_index_options: bool,
}

#[derive(Serialize)]
struct Output<'a> {
    packs: &'a [PackReport],
}

pub fn run(args: &ValidateArgs) -> i32 {
    // A mistyped directory is bad usage, not a failed pack: say so before checking anything.
    let unusable: Vec<_> = args
        .dirs
        .iter()
        .filter_map(|dir| validate::check_dir(dir).err())
        .collect();
    if !unusable.is_empty() {
        for e in unusable {
            eprintln!("error: {e}");
        }
        return EXIT_USAGE;
    }
    let policy = Policy {
        allow_index_options: args.allow_pack_index_options,
        only_binary: false,
    };
    let reports: Vec<PackReport> = args
        .dirs
        .iter()
        .map(|d| validate::validate_pack(d, policy))
        .collect();
    if args.json {
        let output = Output { packs: &reports };
        println!(
            "{}",
            serde_json::to_string_pretty(&output).unwrap_or_default()
        );
    } else {
        print_human(&reports);
    }
    if reports.iter().all(PackReport::is_ok) {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

fn print_human(reports: &[PackReport]) {
    for (i, report) in reports.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("{}: {}", heading(report), status(report));
        for problem in &report.errors {
            println!("error: {}", located(problem));
        }
        for problem in &report.warnings {
            println!("warning: {}", located(problem));
        }
    }
    if reports.len() > 1 {
        let failed = reports.iter().filter(|r| !r.is_ok()).count();
        let total = reports.len();
        match failed {
            0 => println!("\nall {total} packs ok"),
            _ => println!("\n{failed} of {total} packs failed"),
        }
    }
}

fn heading(report: &PackReport) -> String {
    match &report.name {
        Some(name) if !ends_with(&report.path, name) => {
            format!("{} ({name})", report.path.display())
        }
        _ => report.path.display().to_string(),
    }
}

/// Whether the directory is already named after the pack, so the heading need not repeat it.
fn ends_with(path: &Path, name: &str) -> bool {
    path.file_name().is_some_and(|f| f == name)
}

fn status(report: &PackReport) -> String {
    let warnings = count(report.warnings.len(), "warning", "warnings");
    if report.is_ok() {
        match report.warnings.len() {
            0 => "ok".to_string(),
            _ => format!("ok ({warnings})"),
        }
    } else {
        let errors = count(report.errors.len(), "error", "errors");
        match report.warnings.len() {
            0 => format!("FAILED ({errors})"),
            _ => format!("FAILED ({errors}, {warnings})"),
        }
    }
}

/// `file[:line]: message`, the shape editors and CI annotations recognise.
fn located(problem: &Problem) -> String {
    match problem.line {
        Some(line) => format!("{}:{line}: {}", problem.file.display(), problem.message),
        None => format!("{}: {}", problem.file.display(), problem.message),
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::commands::{Command, St2packCli};

    fn report(name: Option<&str>, errors: usize, warnings: usize) -> PackReport {
        let problem = |line| Problem {
            file: PathBuf::from("packs/x/pack.yaml"),
            line,
            message: "m".to_string(),
        };
        PackReport {
            path: PathBuf::from("packs/x"),
            name: name.map(str::to_string),
            errors: (0..errors).map(|_| problem(Some(3))).collect(),
            warnings: (0..warnings).map(|_| problem(None)).collect(),
        }
    }

    #[test]
    fn dirs_default_to_the_current_directory() {
        let cli = St2packCli::try_parse_from(["st2pack", "validate"]).expect("parse");
        let Command::Validate(args) = cli.command else {
            panic!("not validate: {cli:?}");
        };
        assert_eq!(args.dirs, [PathBuf::from(".")]);
        assert!(!args.json);
        let cli =
            St2packCli::try_parse_from(["st2pack", "validate", "a", "b", "--json"]).expect("parse");
        let Command::Validate(args) = cli.command else {
            panic!("not validate: {cli:?}");
        };
        assert_eq!(args.dirs, [PathBuf::from("a"), PathBuf::from("b")]);
        assert!(args.json);
    }

    #[test]
    fn status_counts_errors_and_warnings() {
        assert_eq!(status(&report(None, 0, 0)), "ok");
        assert_eq!(status(&report(None, 0, 2)), "ok (2 warnings)");
        assert_eq!(status(&report(None, 1, 0)), "FAILED (1 error)");
        assert_eq!(status(&report(None, 2, 1)), "FAILED (2 errors, 1 warning)");
    }

    #[test]
    fn headings_add_the_name_only_when_the_directory_differs() {
        assert_eq!(heading(&report(Some("x"), 0, 0)), "packs/x");
        assert_eq!(heading(&report(Some("aws"), 0, 0)), "packs/x (aws)");
        assert_eq!(heading(&report(None, 0, 0)), "packs/x");
    }

    #[test]
    fn problems_are_located_like_compiler_messages() {
        let r = report(None, 1, 1);
        assert_eq!(located(&r.errors[0]), "packs/x/pack.yaml:3: m");
        assert_eq!(located(&r.warnings[0]), "packs/x/pack.yaml: m");
    }
}
