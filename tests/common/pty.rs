//! Runs a binary with its stderr on a real pseudo-terminal, as a user at a terminal would, and
//! keeps every byte it drew there: progress output is only made for terminals, so this is the
//! only way to see it. Stdout stays a pipe (machine output never goes to the terminal here).

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{Winsize, tcsetwinsize};

use super::run::Run;

/// Runs `command` with stderr on a 40-line terminal of [`WIDTH`] columns (`TERM=xterm-256color`) and returns its exit
/// code, its stdout, and, as `stderr`, the raw stream the terminal received (escape sequences
/// included).
pub fn run_on_terminal(mut command: Command) -> Run {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .expect("a pseudo-terminal");
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    tcsetwinsize(
        &master,
        Winsize {
            ws_row: 40,
            ws_col: WIDTH as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .unwrap();
    let terminal = File::options()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .expect("the terminal side of the pseudo-terminal");
    command
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(OwnedFd::from(terminal)));
    let child = command.spawn().unwrap();
    // The terminal side now belongs to the child (and its children) only: reading the master
    // ends (EIO) when the last of them has exited.
    drop(command);
    let reader = std::thread::spawn(move || {
        let mut master = File::from(master);
        let mut stream = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            match master.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => stream.extend_from_slice(&buffer[..n]),
            }
        }
        stream
    });
    let output = child.wait_with_output().unwrap();
    let stream = reader.join().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stream).into_owned(),
    }
}

/// Columns of the terminal [`run_on_terminal`] gives.
pub const WIDTH: usize = 120;

/// The lines a terminal stream drew, in order, escape sequences removed. A line ends at `\r`,
/// `\n`, a cursor movement or an erase, or where the terminal wraps it at [`WIDTH`] columns
/// (progress libraries pad each line to the width and let the terminal wrap), so each redraw of
/// a progress line is one entry.
pub fn drawn_lines(stream: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut column = 0;
    let mut end_line = |line: &mut String, column: &mut usize| {
        let text = line.trim_end();
        if !text.is_empty() {
            lines.push(text.to_string());
        }
        line.clear();
        *column = 0;
    };
    let mut chars = stream.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' | '\n' => end_line(&mut line, &mut column),
            '\x1b' => {
                // CSI: ESC [ parameters, then one final character in @..~; colours (m) do not
                // move the cursor, everything else here does. Other escapes are two characters.
                if chars.next_if_eq(&'[').is_some() {
                    let last = chars.by_ref().find(|c| ('@'..='~').contains(c));
                    if last != Some('m') {
                        end_line(&mut line, &mut column);
                    }
                } else {
                    chars.next();
                }
            }
            c if c.is_control() => {}
            c => {
                if column == WIDTH {
                    end_line(&mut line, &mut column);
                }
                line.push(c);
                column += 1;
            }
        }
    }
    end_line(&mut line, &mut column);
    lines
}
