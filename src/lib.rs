//! Shared bits of the `rvsd` and `rvsadm` binaries.

/// The version, with the git commit when built from a checkout (set by build.rs).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("RVS_GIT_COMMIT"), ")");
