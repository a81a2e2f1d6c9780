//! Pack names: the one place that decides what may become a directory under the packs directory.
//!
//! A pack's name becomes `<packs>/<name>/` and `<virtualenvs>/<name>/`, and it comes from places we do
//! not control (command lines, pack.yaml files, the Exchange index). Every one of them goes through
//! [`PackName::new`], so a name like `../x` can never turn into a path outside those directories.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Longest pack name we accept: a common file-name limit, so the directory can always be created.
pub const MAX_LEN: usize = 255;

/// Reserved by StackStorm for its global (pack-less) config scope.
const RESERVED: &str = "_global";

/// Packs that ship with StackStorm itself; they count as already present and are never installed.
pub const SYSTEM_PACKS: [&str; 5] = ["core", "packs", "linux", "chatops", "default"];

/// Whether `name` is one of the [`SYSTEM_PACKS`] that come with StackStorm.
pub fn is_system_pack(name: &str) -> bool {
    SYSTEM_PACKS.contains(&name)
}

/// A validated pack name: `^[a-z0-9_]+$`, at most [`MAX_LEN`] bytes, never `_global`.
///
/// Holding one proves the name is safe to use as a single path component.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PackName(String);

impl PackName {
    /// Validates `s` as a pack name.
    pub fn new(s: &str) -> Result<PackName, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_LEN {
            return Err(NameError::TooLong {
                name: s.to_string(),
            });
        }
        if let Some(found) = s.chars().find(|&c| !is_name_char(c)) {
            let fixed = s.to_lowercase().replace('-', "_");
            let suggestion =
                (fixed.chars().all(is_name_char) && fixed != RESERVED).then_some(fixed);
            return Err(NameError::InvalidChar {
                name: s.to_string(),
                found,
                suggestion,
            });
        }
        if s == RESERVED {
            return Err(NameError::Reserved);
        }
        Ok(PackName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is one of the [`SYSTEM_PACKS`].
    pub fn is_system(&self) -> bool {
        is_system_pack(&self.0)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

impl fmt::Display for PackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PackName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

// Sound because the derived Eq/Ord/Hash of a one-field struct are those of the inner `String`,
// which agree with `str`'s; lets maps keyed by `PackName` be queried with a `&str`.
impl Borrow<str> for PackName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl FromStr for PackName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PackName::new(s)
    }
}

impl TryFrom<String> for PackName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        PackName::new(&s)
    }
}

impl<'de> serde::Deserialize<'de> for PackName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PackName::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Why a string is not a pack name. Each message quotes the value and says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid pack name \"\": {}", empty_reason())]
    Empty,
    #[error("invalid pack name {}: {}", quote(.name), too_long_reason(.name))]
    TooLong { name: String },
    #[error("invalid pack name {}: {}", quote(.name), char_reason(*.found, .suggestion.as_deref()))]
    InvalidChar {
        name: String,
        /// The first character that is not allowed.
        found: char,
        /// The lowercase, underscore form of the name, when that would be valid.
        suggestion: Option<String>,
    },
    #[error("invalid pack name \"_global\": {}", reserved_reason())]
    Reserved,
}

impl NameError {
    /// The message without the `invalid pack name "…": ` prefix, for callers that phrase their
    /// own context (a pack spec, a pack.yaml field).
    pub fn reason(&self) -> String {
        match self {
            NameError::Empty => empty_reason().to_string(),
            NameError::TooLong { name } => too_long_reason(name),
            NameError::InvalidChar {
                found, suggestion, ..
            } => char_reason(*found, suggestion.as_deref()),
            NameError::Reserved => reserved_reason().to_string(),
        }
    }

    /// The rejected value, quoted and shortened for messages.
    pub fn quoted_name(&self) -> String {
        match self {
            NameError::Empty => "\"\"".to_string(),
            NameError::TooLong { name } | NameError::InvalidChar { name, .. } => quote(name),
            NameError::Reserved => format!("\"{RESERVED}\""),
        }
    }
}

const ALLOWED: &str = "a pack name may contain only lowercase letters, digits and underscores";

fn empty_reason() -> &'static str {
    "a pack name must not be empty; use lowercase letters, digits and underscores"
}

fn too_long_reason(name: &str) -> String {
    format!(
        "it is {} bytes long but a pack name may be at most {MAX_LEN} bytes",
        name.len()
    )
}

fn char_reason(found: char, suggestion: Option<&str>) -> String {
    match suggestion {
        Some(s) => format!("{ALLOWED} (found {found:?}); did you mean \"{s}\"?"),
        None => format!("{ALLOWED} (found {found:?})"),
    }
}

fn reserved_reason() -> &'static str {
    "\"_global\" is reserved by StackStorm; choose another name"
}

/// Quotes `name` with control characters escaped, cut short so a huge input cannot flood a message.
pub(crate) fn quote(name: &str) -> String {
    const SHOWN: usize = 64;
    match name.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}…", &name[..cut]),
        None => format!("{name:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for ok in ["aws", "a", "_x", "pack_2", "0", "st2", "a_b_c", "x_"] {
            let name = PackName::new(ok).unwrap();
            assert_eq!(name.as_str(), ok);
            assert_eq!(name.to_string(), ok);
        }
    }

    #[test]
    fn accepts_exactly_max_len() {
        let s = "a".repeat(MAX_LEN);
        assert_eq!(PackName::new(&s).unwrap().as_str().len(), MAX_LEN);
    }

    #[test]
    fn rejects_path_like_names() {
        for bad in [
            "../x", "a/b", ".", "..", "/abs", "a\\b", "~", "x/..", "a\0b", "a b", "é",
        ] {
            let err = PackName::new(bad).unwrap_err();
            assert!(
                matches!(err, NameError::InvalidChar { .. }),
                "{bad:?} gave {err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains(ALLOWED), "{msg}");
        }
    }

    #[test]
    fn message_quotes_value() {
        let msg = PackName::new("../x").unwrap_err().to_string();
        assert!(
            msg.starts_with(
                "invalid pack name \"../x\": a pack name may contain only lowercase letters, digits and underscores"
            ),
            "{msg}"
        );
        assert!(msg.contains("found '.'"), "{msg}");
    }

    #[test]
    fn nul_is_escaped_in_message() {
        let msg = PackName::new("a\0b").unwrap_err().to_string();
        assert!(msg.contains(r#""a\0b""#), "{msg}");
        assert!(!msg.contains('\0'));
    }

    #[test]
    fn uppercase_suggests_lowercase() {
        let err = PackName::new("Upper").unwrap_err();
        assert_eq!(
            err,
            NameError::InvalidChar {
                name: "Upper".into(),
                found: 'U',
                suggestion: Some("upper".into())
            }
        );
        assert!(err.to_string().contains("did you mean \"upper\"?"));
    }

    #[test]
    fn hyphen_suggests_underscore() {
        let err = PackName::new("my-Pack").unwrap_err();
        assert!(
            err.to_string().contains("did you mean \"my_pack\"?"),
            "{err}"
        );
    }

    #[test]
    fn no_suggestion_when_fix_is_still_invalid() {
        for bad in ["a/b", "../x", "A.b", "_GLOBAL"] {
            match PackName::new(bad).unwrap_err() {
                NameError::InvalidChar { suggestion, .. } => assert_eq!(suggestion, None, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_empty() {
        let err = PackName::new("").unwrap_err();
        assert_eq!(err, NameError::Empty);
        assert!(err.to_string().contains("must not be empty"));
    }

    #[test]
    fn rejects_reserved_global() {
        let err = PackName::new("_global").unwrap_err();
        assert_eq!(err, NameError::Reserved);
        assert!(err.to_string().contains("reserved by StackStorm"));
        // Only the exact name is reserved.
        assert!(PackName::new("_global2").is_ok());
        assert!(PackName::new("global").is_ok());
    }

    #[test]
    fn rejects_too_long_and_keeps_message_short() {
        let s = "a".repeat(MAX_LEN + 1);
        let err = PackName::new(&s).unwrap_err();
        assert!(matches!(err, NameError::TooLong { .. }));
        let msg = err.to_string();
        assert!(msg.contains("256 bytes"), "{msg}");
        assert!(msg.contains("at most 255"), "{msg}");
        assert!(msg.len() < 200, "{msg}");
        assert!(msg.contains('…'));

        let huge = "../".repeat(10_000);
        assert!(PackName::new(&huge).unwrap_err().to_string().len() < 200);
    }

    #[test]
    fn long_multibyte_name_is_cut_on_char_boundary() {
        let s = "é".repeat(200);
        let msg = PackName::new(&s).unwrap_err().to_string();
        assert!(msg.contains('…'));
    }

    #[test]
    fn reason_omits_prefix() {
        let err = PackName::new("Upper").unwrap_err();
        assert!(!err.reason().contains("invalid pack name"));
        assert!(err.reason().contains("did you mean \"upper\"?"));
        assert_eq!(err.quoted_name(), "\"Upper\"");
        assert_eq!(
            err.to_string(),
            format!("invalid pack name {}: {}", err.quoted_name(), err.reason())
        );
    }

    #[test]
    fn system_packs() {
        for p in SYSTEM_PACKS {
            assert!(is_system_pack(p));
            assert!(PackName::new(p).unwrap().is_system());
        }
        assert!(!is_system_pack("aws"));
        assert!(!is_system_pack("Core"));
    }

    #[test]
    fn serde_round_trip_as_plain_string() {
        let name = PackName::new("aws").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"aws\"");
        let back: PackName = serde_json::from_str("\"aws\"").unwrap();
        assert_eq!(back, name);
        let err = serde_json::from_str::<PackName>("\"../x\"").unwrap_err();
        assert!(err.to_string().contains("invalid pack name"));
    }

    #[test]
    fn borrow_allows_str_lookup() {
        let mut set = std::collections::BTreeSet::new();
        set.insert(PackName::new("aws").unwrap());
        assert!(set.contains("aws"));
        assert_eq!("b".parse::<PackName>().unwrap().as_str(), "b");
    }
}
