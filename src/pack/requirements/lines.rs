//! A requirements file's text as lines, the way pip cuts it (`pip/_internal/req/req_file.py`).
//!
//! pip splits with Python's `str.splitlines`, joins a line ending in `\` with the next one, drops
//! `#` comments that start a line or follow whitespace, and skips blank lines. Each logical line
//! keeps the number of its first physical line, which is what users see in their editor.

/// Characters that Python's `splitlines` treats as line breaks besides `\n` and `\r`. Installers
/// do not agree on them, so a file that holds one is refused rather than read one way.
const OTHER_LINE_BREAKS: [char; 8] = [
    '\u{0b}', '\u{0c}', '\u{1c}', '\u{1d}', '\u{1e}', '\u{85}', '\u{2028}', '\u{2029}',
];

/// One line with the 1-based number of its first physical line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Numbered {
    pub number: usize,
    pub text: String,
}

/// The physical lines of `text` (after a UTF-8 byte order mark), split as Python does.
pub(super) fn physical(text: &str) -> Vec<Numbered> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| c == '\n' || c == '\r' || OTHER_LINE_BREAKS.contains(&c))
            .unwrap_or(rest.len());
        lines.push(Numbered {
            number: lines.len() + 1,
            text: rest[..end].to_string(),
        });
        let mut after = &rest[end..];
        if after.starts_with("\r\n") {
            after = &after[2..];
        } else if let Some(c) = after.chars().next() {
            after = &after[c.len_utf8()..];
        }
        rest = after;
    }
    lines
}

/// The line numbers holding a line break other than `\n`, `\r\n` or `\r`.
pub(super) fn odd_line_breaks(text: &str) -> Vec<(usize, char)> {
    let mut found = Vec::new();
    let mut number = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if OTHER_LINE_BREAKS.contains(&c) {
            found.push((number, c));
        }
        let crlf = c == '\r' && chars.peek() == Some(&'\n');
        if crlf {
            chars.next();
        }
        if c == '\n' || c == '\r' || OTHER_LINE_BREAKS.contains(&c) {
            number += 1;
        }
    }
    found
}

/// pip's logical lines: continuations joined, comments stripped, blank lines dropped.
pub(super) fn logical(physical: &[Numbered]) -> Vec<Numbered> {
    let mut joined = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for line in physical {
        let comment = is_comment_line(&line.text);
        if line.text.ends_with('\\') && !comment {
            let (_, buffer) = pending.get_or_insert_with(|| (line.number, String::new()));
            // Python's `str.strip("\\")`: backslashes go from both ends.
            buffer.push_str(line.text.trim_matches('\\'));
            continue;
        }
        match pending.take() {
            // A comment ends a continuation; pip keeps it apart so it is stripped below.
            Some((number, mut buffer)) => {
                if comment {
                    buffer.push(' ');
                }
                buffer.push_str(&line.text);
                joined.push(Numbered {
                    number,
                    text: buffer,
                });
            }
            None => joined.push(line.clone()),
        }
    }
    if let Some((number, text)) = pending {
        joined.push(Numbered { number, text });
    }
    joined.into_iter().filter_map(cleaned).collect()
}

/// Each physical line on its own, cleaned as a logical one. An installer that reads
/// continuations or comments differently from pip still finds its options among these.
pub(super) fn each_alone(physical: &[Numbered]) -> Vec<Numbered> {
    physical
        .iter()
        .filter_map(|line| {
            cleaned(Numbered {
                number: line.number,
                text: strip_comment(&line.text).trim_matches('\\').to_string(),
            })
        })
        .collect()
}

fn cleaned(line: Numbered) -> Option<Numbered> {
    let text = strip_comment(&line.text).trim().to_string();
    (!text.is_empty()).then_some(Numbered {
        number: line.number,
        text,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn logical_of(text: &str) -> Vec<(usize, String)> {
        logical(&physical(text))
            .into_iter()
            .map(|l| (l.number, l.text))
            .collect()
    }

    #[test]
    fn logical_lines_follow_pips_reading() {
        let text = "\u{feff}# comment\n\nrequests \\\n  >=2.0 \\\n  --hash=sha256:abc\n\
                    six # trailing comment\n  # indented comment\n\
                    git+https://x/r.git#egg=r\nlast \\\n";
        assert_eq!(
            logical_of(text),
            [
                (3, "requests   >=2.0   --hash=sha256:abc".to_string()),
                (6, "six".to_string()),
                (8, "git+https://x/r.git#egg=r".to_string()),
                (9, "last".to_string()),
            ]
        );
        // A comment line ends a continuation and is itself dropped.
        assert_eq!(
            logical_of("a \\\n# c\nb\n"),
            [(1, "a".to_string()), (3, "b".to_string())]
        );
        // Backslashes go from both ends of a continued line, as Python's strip("\\") does.
        assert_eq!(
            logical_of("six \\\n\\--pre \\\nx"),
            [(1, "six --pre x".to_string())]
        );
    }

    #[test]
    fn lines_break_where_python_breaks_them() {
        let lines = physical("a\r\nb\rc\u{1e}d\n");
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "c", "d"]);
        assert_eq!(lines[3].number, 4);
        assert_eq!(odd_line_breaks("a\r\nb\rc\u{1e}d\n"), [(3, '\u{1e}')]);
        assert!(odd_line_breaks("a\nb\r\n").is_empty());
    }

    #[test]
    fn each_alone_sees_what_a_continuation_hides_from_pip() {
        // pip reads the comment as swallowing the next line; another reader may not.
        let lines = physical("six # note \\\n--index-url http://x\n");
        assert_eq!(logical(&lines).len(), 1);
        let alone: Vec<String> = each_alone(&lines).into_iter().map(|l| l.text).collect();
        assert_eq!(alone, ["six", "--index-url http://x"]);
    }
}
