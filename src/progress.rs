//! What a run shows while it works.
//!
//! On a terminal, what users of uv and cargo expect: a count of what is done out of the total,
//! one line per pack (or blob) in flight with its current step, bytes and rate for uploads, and
//! nothing left of it when the run ends but the summary. With `--verbose`, each step is also a
//! line of its own, printed above the progress lines. When stderr is not a terminal nothing is
//! drawn (and, without `--verbose`, nothing printed), so CI logs hold only the deterministic end
//! summary.
//!
//! The work (the install engine, layering, pushes) only reports events here: "this pack started
//! this step", "this pack is done", "this many bytes of that blob were sent". Every word and the
//! whole layout are in this module, so the display can change without touching the work, and
//! the work runs the same without a display (`Progress::default()` shows and prints nothing).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::registry::RegistryEvent;

/// A step of one pack's way into the packs directory, or into an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Fetching,
    /// Fetched; its dependencies are being fetched and one version of each pack chosen.
    Resolving,
    /// Ready for the next step, which waits for a free job or for other packs.
    Waiting,
    BuildingVirtualenv,
    CompilingBytecode,
    /// Moving the pack and its virtualenv into place.
    Placing,
    Layering,
}

impl Step {
    fn describe(self) -> &'static str {
        match self {
            Step::Fetching => "fetching",
            Step::Resolving => "resolving",
            Step::Waiting => "waiting",
            Step::BuildingVirtualenv => "building virtualenv",
            Step::CompilingBytecode => "compiling bytecode",
            Step::Placing => "placing",
            Step::Layering => "layering",
        }
    }
}

/// What a run's count counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Packs installed (or found unchanged, or failed).
    Install,
    /// Pack layers built.
    Layer,
    /// Blobs pushed (uploaded, mounted or found present).
    Push,
}

impl Phase {
    fn counted(self) -> &'static str {
        match self {
            Phase::Install => "packs installed",
            Phase::Layer => "layers built",
            Phase::Push => "blobs pushed",
        }
    }
}

/// Where a run reports its events; cheap to clone, shared by every task of the run. The default
/// shows and prints nothing.
#[derive(Clone, Default)]
pub struct Progress {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    verbose: bool,
    /// `None` when stderr is not a terminal.
    screen: Option<Screen>,
    /// Names given to keys ([`Progress::named`]), kept across phases: a layer's digest named
    /// after its pack while layering is shown by that name while pushing.
    names: Mutex<HashMap<String, String>>,
}

struct Screen {
    bars: MultiProgress,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The phase's `done/total` line.
    count: Option<ProgressBar>,
    /// One line per unit in flight, by the key events name it with.
    lines: HashMap<String, ProgressBar>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("verbose", &self.inner.verbose)
            .field("terminal", &self.inner.screen.is_some())
            .finish()
    }
}

impl Progress {
    /// Progress lines when stderr is a terminal, and step lines when `verbose`.
    pub fn new(verbose: bool) -> Progress {
        let screen = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
            // indicatif draws nothing on a dumb terminal: print as if there were none.
            .filter(|bars| !bars.is_hidden())
            .map(|bars| Screen {
                bars,
                state: Mutex::new(State::default()),
            });
        Progress {
            inner: Arc::new(Inner {
                verbose,
                screen,
                names: Mutex::default(),
            }),
        }
    }

    /// Starts counting what `phase` counts; the count and every line of the phase are cleared
    /// when the returned guard is dropped, so what is printed next starts on a clean screen.
    #[must_use = "the phase ends when the guard is dropped"]
    pub fn phase(&self, phase: Phase) -> PhaseGuard {
        if let Some(screen) = &self.inner.screen {
            // Shown from the first `expect`, so that it never reads 0/0.
            let count = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden())
                .with_style(style("{spinner:.green} {pos}/{len} {prefix} [{elapsed}]"))
                .with_prefix(phase.counted());
            let old = screen.state().count.replace(count);
            if let Some(old) = old {
                finish(&screen.bars, &old);
            }
        }
        PhaseGuard {
            progress: self.clone(),
        }
    }

    /// `n` more packs (or blobs) to count in this phase.
    pub fn expect(&self, n: usize) {
        if let Some(screen) = &self.inner.screen
            && let Some(count) = &screen.state().count
        {
            count.inc_length(n as u64);
            // Not yet on the screen: hidden until added (which draws it through `bars`).
            if count.is_hidden() {
                screen.bars.insert(0, count.clone());
                count.enable_steady_tick(Duration::from_millis(100));
            }
            count.force_draw();
        }
    }

    /// The pack (or blob) `key` started `step`.
    pub fn step(&self, key: &str, step: Step) {
        if self.inner.verbose && step != Step::Waiting {
            self.println(&format!("{}: {}", self.name_of(key), step.describe()));
        }
        if let Some(screen) = &self.inner.screen {
            let line = screen.line(key, || {
                ProgressBar::new(0)
                    .with_style(style("  {prefix:20} {msg}"))
                    .with_prefix(self.short_name(key))
            });
            line.set_message(step.describe());
            line.force_draw();
        }
    }

    /// What was reported as `key` (a spec as typed, a digest) is called `name` from now on.
    pub fn named(&self, key: &str, name: &str) {
        self.inner
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_string(), name.to_string());
        if let Some(screen) = &self.inner.screen
            && let Some(line) = screen.state().lines.get(key)
        {
            line.set_prefix(name.to_string());
        }
    }

    /// The pack (or blob) `key` is done, whether it succeeded or not: its line goes, the count
    /// goes up.
    pub fn done(&self, key: &str) {
        if let Some(screen) = &self.inner.screen {
            let mut state = screen.state();
            if let Some(line) = state.lines.remove(key) {
                finish(&screen.bars, &line);
            }
            if let Some(count) = &state.count {
                count.inc(1);
                count.force_draw();
            }
        }
    }

    /// Prints `line` on stderr, above the progress lines when there are any.
    pub fn println(&self, line: &str) {
        match &self.inner.screen {
            Some(screen) => {
                let _ = screen.bars.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    /// What to give [`RegistryClient::on_event`] to show what pushes and pulls are doing.
    ///
    /// [`RegistryClient::on_event`]: crate::registry::RegistryClient::on_event
    pub fn registry_sink(&self) -> impl Fn(&RegistryEvent) + Send + Sync + 'static {
        let progress = self.clone();
        move |event| progress.registry_event(event)
    }

    fn registry_event(&self, event: &RegistryEvent) {
        match event {
            RegistryEvent::PushStarted { blobs } => self.expect(*blobs),
            RegistryEvent::BlobUploadStarted { digest, size } => {
                if let Some(screen) = &self.inner.screen {
                    let line = screen.line(digest, || {
                        ProgressBar::new(*size)
                            .with_style(
                                style(
                                    "  {prefix:20} pushing [{bar:25}] {bytes}/{total_bytes} \
                                     {binary_bytes_per_sec}",
                                )
                                .progress_chars("=> "),
                            )
                            .with_prefix(self.short_name(digest))
                    });
                    // A retry sends the blob again from its start.
                    line.reset();
                    line.force_draw();
                }
            }
            RegistryEvent::BlobBytesSent { digest, bytes } => {
                if let Some(screen) = &self.inner.screen
                    && let Some(line) = screen.state().lines.get(digest)
                {
                    line.inc(*bytes);
                }
            }
            RegistryEvent::BlobUploaded { digest, size } => {
                self.verbose(digest, &format!("uploaded {}", HumanBytes(*size)));
                self.done(digest);
            }
            RegistryEvent::BlobSkipped { digest } => {
                self.verbose(digest, "already in the registry");
                self.done(digest);
            }
            RegistryEvent::BlobMounted { digest, from } => {
                self.verbose(digest, &format!("mounted from {from}"));
                self.done(digest);
            }
            RegistryEvent::BlobDownloaded { digest, size } => {
                self.verbose(digest, &format!("downloaded {}", HumanBytes(*size)));
            }
            RegistryEvent::ManifestPushed { reference, digest } => {
                self.verbose(reference, &format!("manifest {digest} written"));
            }
            RegistryEvent::Retrying {
                what,
                attempt,
                delay,
                error,
            } => self.verbose(
                what,
                &format!("attempt {attempt} failed ({error}); trying again in {delay:?}"),
            ),
        }
    }

    fn verbose(&self, key: &str, what: &str) {
        if self.inner.verbose {
            self.println(&format!("{}: {what}", self.name_of(key)));
        }
    }

    /// The name given to `key`, else `key` itself (for step lines printed in full).
    fn name_of(&self, key: &str) -> String {
        self.inner
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_string())
    }

    /// The name given to `key`, else a short form of it for a progress line.
    fn short_name(&self, key: &str) -> String {
        let name = self.name_of(key);
        if name != key { name } else { short_name(key) }
    }

    fn end_phase(&self) {
        if let Some(screen) = &self.inner.screen {
            let mut state = screen.state();
            for (_, line) in state.lines.drain() {
                finish(&screen.bars, &line);
            }
            if let Some(count) = state.count.take() {
                finish(&screen.bars, &count);
            }
            let _ = screen.bars.clear();
        }
    }
}

/// Ends its phase when dropped (see [`Progress::phase`]).
pub struct PhaseGuard {
    progress: Progress,
}

impl Drop for PhaseGuard {
    fn drop(&mut self) {
        self.progress.end_phase();
    }
}

impl Screen {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The line of `key`, made by `new` and added below the others if it has none yet.
    fn line(&self, key: &str, new: impl FnOnce() -> ProgressBar) -> ProgressBar {
        let mut state = self.state();
        if let Some(line) = state.lines.get(key) {
            return line.clone();
        }
        let line = self.bars.add(new());
        state.lines.insert(key.to_string(), line.clone());
        line
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn finish(bars: &MultiProgress, bar: &ProgressBar) {
    bar.finish_and_clear();
    bars.remove(bar);
}

/// A short form of `key` for a progress line: the last part of a path or URL (`/src/email` and
/// `https://host/org/email.git=v1` read `email` and `email=v1`), a digest's first twelve hex
/// digits.
fn short_name(key: &str) -> String {
    if let Some(hex) = key.strip_prefix("sha256:") {
        return format!("sha256:{}", hex.get(..12).unwrap_or(hex));
    }
    let (location, reference) = match key.rsplit_once('=') {
        Some((location, reference)) if !reference.contains('/') => (location, Some(reference)),
        _ => (key, None),
    };
    let last = location
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(location);
    let last = last.strip_suffix(".git").unwrap_or(last);
    match reference {
        Some(reference) => format!("{last}={reference}"),
        None => last.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_name_packs_shortly() {
        assert_eq!(short_name("/src/packs/email/"), "email");
        assert_eq!(
            short_name("https://example.com/org/email.git=v1.2"),
            "email=v1.2"
        );
        assert_eq!(short_name("git@example.com:org/email.git"), "email");
        assert_eq!(short_name("email=1.0.0"), "email=1.0.0");
        assert_eq!(
            short_name("sha256:0123456789abcdef0123456789abcdef"),
            "sha256:0123456789ab"
        );
    }
}
