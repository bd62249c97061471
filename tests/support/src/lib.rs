//! What the project's tests share: launchers for the servers `tests/setup` installs and for the oracle `tests/oracle/build` makes (each on a
//! free loopback port, stopped when dropped), a fault-injecting TCP proxy, git repositories for
//! the git driver, TLS in front of a server, and `argoexec wait`'s command line as the black-box
//! tests run it. A test-only crate: nothing here ships.

// Panicking is how a test helper reports a broken setup: the test fails with the message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod faultproxy;
pub mod gitrepos;
pub mod nginx;
pub mod oracle;
pub mod pods;
pub mod process;
pub mod s3s;
pub mod tls;
pub mod waitcmd;
