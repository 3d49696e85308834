//! netnsctl: makes the kernel's named network namespaces match a TOML file.
//!
//! The stages follow each other: [`config`] parses and validates the file, [`desired`] resolves
//! it into the desired model, [`observe`] reads the kernel into the observed model, [`plan`]
//! diffs the two without side effects, and [`apply`] executes the steps. All kernel access goes
//! through [`kernel`]; [`state`] records what netnsctl created.

pub mod apply;
pub mod cli;
pub mod config;
pub mod desired;
pub mod kernel;
pub mod observe;
pub mod plan;
pub mod state;
pub mod systemd;
pub mod teardown;
