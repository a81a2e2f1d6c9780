//! What a pack is before it is fetched: the spec a user types, the name it installs under, and the
//! pack.yaml it must carry. Pure parsing and validation, no I/O beyond reading pack.yaml and the
//! pack's symlinks, so every later stage can trust these types instead of re-checking strings.

pub mod manifest;
pub mod name;
pub mod pin;
pub mod requirements;
pub mod spec;
pub mod symlinks;
