//! What a pack is before it is fetched: the spec a user types, the name it installs under, the
//! pack.yaml it must carry and the requirements it declares; and what it is once installed: its
//! pin. Parsing and validation of the pack's own files (pack.yaml, requirements, symlinks, the
//! pin file), so every later stage (install, build, validate) can trust these types instead of
//! re-checking strings.

pub mod manifest;
pub mod name;
pub mod pin;
pub mod requirements;
pub mod spec;
pub mod symlinks;
