//! Keeps credentials out of everything a user or an image can see.
//!
//! Git and index URLs may carry `user:password@` or a token as the user (`https://TOKEN@host/`);
//! every message, log line, provenance file and image label goes through [`redact_url`] (or
//! [`scrub`] for text that may quote a URL) so a secret never leaks.

/// Returns `url` with its whole user info (`user`, `user:password`, a token used as the user)
/// replaced by `***`: `https://***@host/org/repo.git`.
///
/// A user name alone is often a token (`https://TOKEN@host/...`, the form git hosts document),
/// and no rule tells a short token from a name, so none is kept. Works on any
/// `scheme://[userinfo@]host...` string, including ones `url::Url` would reject, and leaves
/// scp-like `git@host:org/repo` alone (no scheme: there the user is a fixed account name).
pub fn redact_url(url: &str) -> String {
    match user_info_span(url) {
        Some((start, end)) => format!("{}***{}", &url[..start], &url[end..]),
        None => url.to_string(),
    }
}

/// Returns `text` with the user info of every URL in it hidden, as [`redact_url`] does: for
/// messages that quote what a pack or a user wrote (a requirements line may name an index URL
/// with a token in it).
pub fn redact_urls_in(text: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            if word.contains("://") {
                redact_url(word)
            } else {
                word.to_string()
            }
        })
        .collect()
}

/// Where the user info of `scheme://userinfo@host...` sits in `url`, when it has a non-empty one.
fn user_info_span(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let at = authority.rfind('@')?;
    (at > 0).then_some((start, start + at))
}

/// The pieces of `url`'s user info that other libraries (git2 errors, installer output) may
/// quote, so that their text can be scrubbed of them: the whole user info, the password and the
/// user name, each unless it is too short to be told from ordinary words.
pub fn secrets_in_url(url: &str) -> Vec<String> {
    let Some((start, end)) = user_info_span(url) else {
        return Vec::new();
    };
    let user_info = &url[start..end];
    let (user, password) = user_info.split_once(':').unwrap_or((user_info, ""));
    [user_info, password, user]
        .into_iter()
        .filter(|piece| piece.len() >= MIN_SCRUBBED_LEN)
        .map(str::to_string)
        .collect()
}

/// Shorter pieces (`git`, `me`) are left in free text, where replacing them would garble every
/// word that holds them; as the user info of a quoted URL they are hidden whatever their length.
const MIN_SCRUBBED_LEN: usize = 4;

/// Replaces the user info carried by `url` wherever `text` quotes it (raw and percent-decoded):
/// as the user info of the URL, and, when long enough, anywhere.
pub fn scrub(text: &str, url: &str) -> String {
    let Some((start, end)) = user_info_span(url) else {
        return text.to_string();
    };
    let mut out = text.replace(&url[start..=end], "***@");
    for secret in secrets_in_url(url) {
        out = out.replace(&secret, "***");
        // Percent-decoded forms show up in some library messages.
        if let Ok(decoded) = urlencoding_decode(&secret)
            && decoded != secret
            && !decoded.is_empty()
        {
            out = out.replace(&decoded, "***");
        }
    }
    out
}

fn urlencoding_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_the_user_info_of_every_url_in_a_text() {
        assert_eq!(
            redact_urls_in(
                "-i https://bob:s3cret@host/simple: a pack may not\nx=git+https://tok@h/r.git"
            ),
            "-i https://***@host/simple: a pack may not\nx=git+https://***@h/r.git"
        );
        assert_eq!(
            redact_urls_in("no url here, git@host:org/r"),
            "no url here, git@host:org/r"
        );
    }

    #[test]
    fn hides_the_whole_user_info_keeps_host_and_path() {
        for url in [
            "https://bob:s3cret@git.example.com/team/pack.git",
            "https://ghp_abcdefghijklmnopqrstuvwxyz0123@git.example.com/team/pack.git",
            "https://tok@git.example.com/team/pack.git",
            "https://:pw@git.example.com/team/pack.git",
        ] {
            assert_eq!(redact_url(url), "https://***@git.example.com/team/pack.git");
        }
        assert_eq!(redact_url("ssh://git@host/o/r"), "ssh://***@host/o/r");
        assert_eq!(
            redact_url("http://a@b:c@host:8080/r?x=1"),
            "http://***@host:8080/r?x=1"
        );
    }

    #[test]
    fn leaves_plain_urls_and_scp_style_alone() {
        assert_eq!(
            redact_url("https://github.com/o/r"),
            "https://github.com/o/r"
        );
        assert_eq!(
            redact_url("git@github.com:o/r.git"),
            "git@github.com:o/r.git"
        );
        assert_eq!(redact_url("https://@host/r"), "https://@host/r");
    }

    #[test]
    fn at_sign_in_path_is_not_userinfo() {
        assert_eq!(redact_url("https://host/a@b"), "https://host/a@b");
    }

    #[test]
    fn scrub_removes_raw_and_decoded_secret() {
        let url = "https://u:p%40ss@host/r";
        assert_eq!(
            scrub("failed for p%40ss and p@ss", url),
            "failed for *** and ***"
        );
    }

    #[test]
    fn scrub_removes_a_short_token_used_as_the_user() {
        let url = "https://t0k3n@host/r";
        assert_eq!(
            scrub("fetching https://t0k3n@host/r as t0k3n failed", url),
            "fetching https://***@host/r as *** failed"
        );
        // A name too short to scrub alone is still hidden where it is the user info.
        let url = "ssh://git@host/r";
        assert_eq!(
            scrub("git: cannot reach ssh://git@host/r", url),
            "git: cannot reach ssh://***@host/r"
        );
    }
}
