//! Raw FFI to DPDK, generated at build time by bindgen over the system headers, plus the
//! `rvs_*` shim functions that wrap DPDK's `static inline` API. Nothing here is safe to
//! call without reading the DPDK documentation; `dataplane::io` is the safe wrapper.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code
)]
#![allow(clippy::all)]
#![allow(rustdoc::all)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
