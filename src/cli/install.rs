//! The install command line, shared by `st2-pack-install` and `st2pack install`: upstream's
//! flags keep working, and every other setting falls back to st2.conf, then to defaults.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::registry_args::RegistryArgs;
use super::runtime_args::{self, RuntimeDefault, RuntimeFlags};
use super::{failed, run_to_exit_code, usage};
use crate::cache::Cache;
use crate::config::St2Config;
use crate::install::place::Targets;
use crate::install::venv::{Installer, VenvRuntime};
use crate::install::{self, InstallOptions, InstallReport, Status, default_jobs};
use crate::pack::spec::PackSpec;
use crate::progress::Progress;
use crate::source::index::{DEFAULT_INDEX_URL, IndexOptions, check_url, split_url_list};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InstallerArg {
    /// uv when it is on PATH, else python -m venv and pip.
    Auto,
    Uv,
    Pip,
}

#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// Packs to install: NAME[=VERSION] from the Exchange, OWNER/REPO on GitHub, a git URL
    /// (https://, ssh://, git@host:org/repo.git, file:///path) with an optional =REF, or a
    /// local directory (./dir, /abs/dir). With --locked: the packs of the lock file to install
    /// (with their dependencies) [default: all of them]
    #[arg(value_name = "PACK", required_unless_present = "locked")]
    pub packs: Vec<String>,

    /// Install exactly what this lock file (from `st2pack lock`) holds: its commits, and its
    /// requirements with their hashes checked.
    #[arg(long, value_name = "FILE")]
    pub locked: Option<PathBuf>,

    /// Install packs here [default: st2.conf [content] packs_base_paths, else <base_path>/packs]
    #[arg(long, value_name = "DIR")]
    pub packs_dir: Option<PathBuf>,

    /// Build virtualenvs here [default: <st2.conf [system] base_path>/virtualenvs]
    #[arg(long, value_name = "DIR")]
    pub virtualenvs_dir: Option<PathBuf>,

    #[command(flatten)]
    pub settings: InstallSettings,

    /// For --runtime-image.
    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    pub json: bool,

    /// Print each step as it happens.
    #[arg(long, short = 'v')]
    pub verbose: bool,

    /// Print everything, including each step (same as --verbose).
    #[arg(long)]
    pub debug: bool,
}

/// How packs are fetched and their virtualenvs built: everything but the packs and where they
/// go, shared with `st2pack build`.
#[derive(Debug, Clone, Args)]
pub struct InstallSettings {
    /// st2.conf to read [default: $ST2_CONFIG_PATH, else /etc/st2/st2.conf when it exists]
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// Exchange index URL (http(s):// or file://); repeat or comma-separate for several, the
    /// first wins on duplicates [default: st2.conf [content] index_url, else the public index]
    #[arg(long, value_name = "URL")]
    pub index_url: Vec<String>,

    /// Seconds to wait for an index before giving up.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub index_timeout: u64,

    /// Python interpreter for the virtualenvs: the one st2 runs with
    /// [default: st2.conf [actionrunner] python_binary, else python3]
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,

    /// Tool that builds the virtualenvs.
    #[arg(long, value_enum, default_value = "auto")]
    pub installer: InstallerArg,

    /// The cache: git mirrors, virtualenvs, bytecode, layers [default: ~/.cache/st2pack]
    #[arg(long, value_name = "DIR", env = "ST2PACK_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Reinstall even when nothing changed, rebuild virtualenvs, and relax version checks
    /// (never the pack name rules).
    #[arg(long)]
    pub force: bool,

    /// Verify TLS certificates of git servers (the default).
    #[arg(long, overrides_with = "noverify_ssl")]
    pub verify_ssl: bool,

    /// Do not verify TLS certificates of git servers and indexes.
    #[arg(long, overrides_with = "verify_ssl")]
    pub noverify_ssl: bool,

    /// Install only the packs given, not the dependencies their pack.yaml lists.
    #[arg(long)]
    pub skip_dependencies: bool,

    /// Keep the pack's .git directory (checked out at the installed commit).
    #[arg(long)]
    pub keep_git: bool,

    /// Do not install the base requirement every StackStorm virtualenv gets (six).
    #[arg(long)]
    pub no_base_requirements: bool,

    /// Give the virtualenvs access to the interpreter's site-packages
    /// [default: when st2.conf [actionrunner] virtualenv_opts asks for it]
    #[arg(long)]
    pub system_site_packages: bool,

    /// StackStorm's own site-packages, added to every virtualenv through a .pth file as st2 does
    /// [default: detected when running inside an st2 installation]
    #[arg(long, value_name = "DIR")]
    pub st2_site_packages: Option<PathBuf>,

    /// Install Python requirements offline, only from the wheels in DIR.
    #[arg(long, value_name = "DIR")]
    pub wheelhouse: Option<PathBuf>,

    /// Let packs' requirements files choose package indexes and trusted hosts (--index-url,
    /// --extra-index-url, --find-links, --trusted-host, ...), include files by URL and use
    /// ${VARIABLE}s; only for packs you trust.
    #[arg(long)]
    pub allow_pack_index_options: bool,

    /// Install wheels only: build nothing from source (a source build runs the package's own
    /// code on this machine). For packs you do not trust.
    #[arg(long)]
    pub only_binary: bool,

    /// StackStorm version to check each pack's stackstorm_version against.
    #[arg(long, value_name = "VERSION")]
    pub st2_version: Option<String>,

    /// Packs fetched and virtualenvs built at once [default: number of CPUs]
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,

    /// Seconds to wait for another install into the same directory, or a cache prune, to finish.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub lock_timeout: u64,

    #[command(flatten)]
    pub runtime: RuntimeFlags,

    /// Accepted for compatibility with upstream st2-pack-install; Python 3 is always used.
    #[arg(long, hide = true)]
    pub use_python3: bool,
}

/// Where an install goes: explicit directories, else st2.conf's. (`st2pack build` chooses its
/// own, and the directories the packs are used from, in `build::packs`.)
#[derive(Debug, Clone, Default)]
pub struct Placement {
    pub packs_dir: Option<PathBuf>,
    pub virtualenvs_dir: Option<PathBuf>,
    pub progress: Progress,
}

impl InstallSettings {
    /// Resolves flags, st2.conf and defaults into engine options, and parses every spec first so
    /// that a typo fails before anything is fetched.
    pub fn to_options(
        &self,
        packs: &[String],
        placement: Placement,
    ) -> Result<(InstallOptions, Vec<PackSpec>), String> {
        let specs = packs
            .iter()
            .map(|raw| PackSpec::parse(raw).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let env = |name: &str| std::env::var(name).ok();
        let config =
            St2Config::load(self.config_file.as_deref(), &env).map_err(|e| e.to_string())?;

        let packs_dir = placement.packs_dir.unwrap_or_else(|| config.packs_dir());
        let virtualenvs_dir = placement
            .virtualenvs_dir
            .unwrap_or_else(|| config.virtualenvs_dir());
        let mut index_urls = split_url_list(&self.index_url);
        if index_urls.is_empty() {
            index_urls = config.index_urls();
        }
        if index_urls.is_empty() {
            index_urls.push(DEFAULT_INDEX_URL.to_string());
        }
        for url in &index_urls {
            check_url(url).map_err(|e| e.to_string())?;
        }
        let st2_version = self
            .st2_version
            .as_deref()
            .map(|v| {
                semver::Version::parse(v.trim_start_matches('v'))
                    .map_err(|e| format!("--st2-version {v:?} is not a version like 3.8.1: {e}"))
            })
            .transpose()?;
        if let Some(dir) = self.wheelhouse.as_ref().filter(|dir| !dir.is_dir()) {
            return Err(format!(
                "--wheelhouse {}: no such directory\n  give a directory of .whl files (pip wheel -w DIR -r requirements.txt makes one)",
                dir.display()
            ));
        }
        let verify_ssl = !self.noverify_ssl;
        let options = InstallOptions {
            targets: Targets {
                packs_dir: absolute(&packs_dir)?,
                virtualenvs_dir: absolute(&virtualenvs_dir)?,
            },
            packs_runtime_dir: absolute(&packs_dir)?,
            virtualenvs_runtime_dir: absolute(&virtualenvs_dir)?,
            python: self
                .python
                .clone()
                .or_else(|| config.python_binary())
                .unwrap_or_else(|| PathBuf::from("python3")),
            runtime: VenvRuntime::Native,
            keep_pip: true,
            installer: match self.installer {
                InstallerArg::Auto => Installer::Auto,
                InstallerArg::Uv => Installer::Uv,
                InstallerArg::Pip => Installer::Pip,
            },
            index: IndexOptions {
                urls: index_urls,
                timeout: Duration::from_secs(self.index_timeout.max(1)),
                verify_ssl,
            },
            cache: Cache::from_option(self.cache_dir.clone()),
            verify_ssl,
            force: self.force,
            skip_dependencies: self.skip_dependencies,
            keep_git: self.keep_git,
            base_requirements: !self.no_base_requirements,
            system_site_packages: self.system_site_packages || config.system_site_packages(),
            st2_site_packages: self
                .st2_site_packages
                .clone()
                .or_else(detect_st2_site_packages),
            wheelhouse: self.wheelhouse.as_deref().map(absolute).transpose()?,
            allow_pack_index_options: self.allow_pack_index_options,
            only_binary: self.only_binary,
            st2_version,
            jobs: self.jobs.unwrap_or_else(default_jobs).max(1),
            lock_timeout: Duration::from_secs(self.lock_timeout),
            progress: placement.progress,
            locked: None,
            virtualenvs_elsewhere: Default::default(),
        };
        Ok((options, specs))
    }
}

/// Runs an install from the command line and returns the process exit code.
pub fn run(args: &InstallArgs) -> i32 {
    let placement = Placement {
        packs_dir: args.packs_dir.clone(),
        virtualenvs_dir: args.virtualenvs_dir.clone(),
        progress: Progress::new(args.verbose || args.debug),
    };
    run_to_exit_code(async {
        let (mut options, specs) = args
            .settings
            .to_options(&args.packs, placement)
            .map_err(usage)?;
        let settings = &args.settings;
        let cache = super::cache::open(
            settings.cache_dir.clone(),
            Duration::from_secs(settings.lock_timeout),
        )?;
        let registry = settings.runtime.registry_client(&args.registry)?;
        let default = RuntimeDefault::Native;
        let runtime_image =
            runtime_args::apply(&settings.runtime, &mut options, default, &registry, &cache)
                .await?;
        let specs = match &args.locked {
            Some(file) => super::lock::apply_locked(file, &specs, &mut options).await?,
            None => specs,
        };
        let report = install::install(&options, &specs)
            .await
            .map_err(|e| (e.exit_code(), e.to_string()))?;
        drop(runtime_image);
        print_summary(&report);
        if args.json {
            print_json(&report);
        }
        if report.all_succeeded() {
            Ok(())
        } else {
            // The summary already lists each failure.
            Err(failed(""))
        }
    })
}

/// The end summary on stderr, in the order the packs were requested.
pub fn print_summary(report: &InstallReport) {
    let mut out = std::io::stderr().lock();
    let count = |status| report.packs.iter().filter(|p| p.status == status).count();
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    for pack in &report.packs {
        let label = pack.name.as_deref().unwrap_or(&pack.spec);
        for warning in &pack.warnings {
            let _ = writeln!(out, "warning: {label}: {warning}");
        }
        let version = pack
            .version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        let origin = match (&pack.r#ref, &pack.commit) {
            (Some(r), Some(c)) => format!(" ({r}, {})", &c[..c.len().min(12)]),
            _ => String::new(),
        };
        let dependency = if pack.requested_by.iter().any(|r| r == "command line") {
            String::new()
        } else {
            format!(" [dependency of {}]", pack.requested_by.join(", "))
        };
        let _ = match pack.status {
            Status::Installed => writeln!(out, "installed  {label}{version}{origin}{dependency}"),
            Status::Unchanged => writeln!(out, "unchanged  {label}{version}{origin}{dependency}"),
            Status::Failed => writeln!(
                out,
                "FAILED     {}{dependency}: {}",
                pack.spec,
                pack.error
                    .as_deref()
                    .unwrap_or("unknown error")
                    .replace('\n', "\n           ")
            ),
        };
    }
    let _ = writeln!(
        out,
        "{} installed, {} unchanged, {} failed (packs in {}, virtualenvs in {})",
        count(Status::Installed),
        count(Status::Unchanged),
        count(Status::Failed),
        report.packs_dir.display(),
        report.virtualenvs_dir.display()
    );
}

fn print_json(report: &InstallReport) {
    match serde_json::to_string_pretty(report) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot write the JSON summary: {e}"),
    }
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// StackStorm's own site-packages when running inside an st2 installation (the builder image).
fn detect_st2_site_packages() -> Option<PathBuf> {
    let lib = Path::new("/opt/stackstorm/st2/lib");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(lib)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages"))
        .filter(|p| p.is_dir())
        .collect();
    candidates.sort();
    candidates.pop()
}
