//! The command-line edge shared by both binaries: argument definitions, exit codes, and the
//! guarantee that a user never sees a panic or a backtrace. The work is done by `build`,
//! `install` and `validate`; a command here turns its flags into their calls and prints what they
//! report.

pub mod base;
pub mod build;
pub mod cache;
pub mod commands;
pub mod inspect;
pub mod install;
pub mod lock;
pub mod merge;
pub mod registry_args;
pub mod result_args;
pub mod runtime_args;
pub mod target_args;
pub mod validate;

/// Everything asked for was done.
pub const EXIT_OK: i32 = 0;
/// The operation failed (some pack did not install, a push failed).
pub const EXIT_FAILED: i32 = 1;
/// Bad usage or bad input: nothing was attempted.
pub const EXIT_USAGE: i32 = 2;

/// What a subcommand failed with: the exit code, and the message (empty when already printed).
pub type Failure = (i32, String);

/// Bad usage or bad input, with the message to print.
pub fn usage(message: impl Into<String>) -> Failure {
    (EXIT_USAGE, message.into())
}

/// The operation failed, with the message to print.
pub fn failed(message: impl std::fmt::Display) -> Failure {
    (EXIT_FAILED, message.to_string())
}

/// Runs a subcommand's async body on a fresh runtime and turns its outcome into the exit code,
/// printing the error.
pub fn run_to_exit_code(body: impl std::future::Future<Output = Result<(), Failure>>) -> i32 {
    let outcome = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(body),
        Err(e) => Err(failed(format!("cannot start the async runtime: {e}"))),
    };
    match outcome {
        Ok(()) => EXIT_OK,
        Err((code, message)) => {
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            code
        }
    }
}

/// Replaces Rust's panic message and backtrace with one line that says what to do.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!(
            "error: internal error{location}: {message}\n  this is a bug in st2pack; please report it with the command you ran"
        );
    }));
}

/// Runs `main`, turning a panic into exit code 1 after the hook above has printed it.
pub fn run_guarded(main: impl FnOnce() -> i32 + std::panic::UnwindSafe) -> ! {
    install_panic_hook();
    let code = std::panic::catch_unwind(main).unwrap_or(EXIT_FAILED);
    std::process::exit(code)
}
