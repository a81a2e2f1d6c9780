//! Keeps credentials out of everything a user or an image can see.
//!
//! Git and index URLs may carry `user:password@`; every message, log line and provenance file goes
//! through [`redact_url`] (or [`scrub`] for text that may quote a URL) so a secret never leaks.

/// Returns `url` with any password (and token-like user names) in its authority replaced by `***`.
///
/// Works on any `scheme://[userinfo@]host...` string, including ones `url::Url` would reject, and
/// leaves scp-like `git@host:org/repo` alone (there the user is not a secret).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let redacted_userinfo = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        // A lone user part is usually a name (`git@`), but a long opaque one is a token.
        None if looks_like_token(userinfo) => "***".to_string(),
        None => userinfo.to_string(),
    };
    format!(
        "{}{}{}",
        &url[..authority_start],
        redacted_userinfo,
        &url[authority_start + at..]
    )
}

/// Returns the password (or token) embedded in `url`, if any, so that text produced by other
/// libraries (git2 errors, installer output) can be scrubbed of it.
pub fn secret_in_url(url: &str) -> Option<String> {
    let scheme_end = url.find("://")?;
    let rest = &url[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    match userinfo.split_once(':') {
        Some((_, password)) if !password.is_empty() => Some(password.to_string()),
        None if looks_like_token(userinfo) => Some(userinfo.to_string()),
        _ => None,
    }
}

/// Replaces every occurrence of the secret carried by `url` in `text` (raw and percent-decoded).
pub fn scrub(text: &str, url: &str) -> String {
    let mut out = text.to_string();
    if let Some(secret) = secret_in_url(url) {
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

fn looks_like_token(user: &str) -> bool {
    user.len() >= 20
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
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
    fn hides_password_keeps_user_and_host() {
        assert_eq!(
            redact_url("https://bob:s3cret@git.example.com/team/pack.git"),
            "https://bob:***@git.example.com/team/pack.git"
        );
    }

    #[test]
    fn hides_token_used_as_user() {
        assert_eq!(
            redact_url("https://ghp_abcdefghijklmnopqrstuvwxyz0123@github.com/o/r"),
            "https://***@github.com/o/r"
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
        assert_eq!(redact_url("ssh://git@host/o/r"), "ssh://git@host/o/r");
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
}
