//! Shared test harness: real git repositories made from the fixture packs, a real HTTP server
//! and `git daemon` on 127.0.0.1, offline wheelhouses, and a runner for the real binaries.

#![allow(dead_code)]

pub mod bullseye;
pub mod containerd;
pub mod extension;
pub mod images;
pub mod pty;
pub mod registry;
pub mod repos;
pub mod run;
pub mod runtime_image;
pub mod servers;
pub mod token;
pub mod wheel;
