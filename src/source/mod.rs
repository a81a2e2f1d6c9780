//! Where packs come from: the StackStorm Exchange index, git repositories, local directories.

pub mod git;
pub mod index;
pub mod local;
