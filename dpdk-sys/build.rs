//! Finds the system DPDK with pkg-config, generates bindings with bindgen into OUT_DIR
//! (nothing generated is committed) and compiles the C shim for static inline functions.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");

    let dpdk = match pkg_config::Config::new()
        .atleast_version("21.11")
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => panic!(
            "DPDK not found with pkg-config (libdpdk): {e}\n\
             Install it with: apt-get install -y libdpdk-dev dpdk-dev pkg-config \
             (or run scripts/setup.sh)"
        ),
    };

    // pkg-config's cflags carry -include rte_config.h and -march; both matter for the
    // inline functions in the shim and for struct layout seen by bindgen.
    let out = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("pkg-config runs");
    let flags = String::from_utf8_lossy(&out.stdout).to_string();
    let mut clang_args: Vec<String> = Vec::new();
    let mut it = flags.split_whitespace();
    while let Some(f) = it.next() {
        if f == "-include" {
            if let Some(h) = it.next() {
                clang_args.push("-include".into());
                clang_args.push(h.into());
            }
        } else if f.starts_with("-I") || f.starts_with("-march") || f.starts_with("-D") {
            clang_args.push(f.into());
        }
    }
    let _ = &dpdk;

    let mut build = cc::Build::new();
    build
        .file("shim.c")
        .include(".")
        .opt_level(3)
        .warnings(false);
    for a in &clang_args {
        build.flag(a);
    }
    build.compile("rvs_dpdk_shim");

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&clang_args)
        .clang_arg("-I.")
        .allowlist_function("rte_.*|rvs_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        .derive_default(true)
        // Packed protocol headers that Rust cannot express (packed containing aligned);
        // rvs parses headers itself and never needs their fields.
        .opaque_type("rte_l2tpv2_combined_msg_hdr|rte_l2tpv2_common_hdr|rte_gtp_psc_generic_hdr")
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .generate()
        .expect("bindgen could not generate DPDK bindings");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings");

    // Link the DPDK libraries rvs calls, without --as-needed dropping any: the PMDs
    // themselves are shared-object plugins that EAL loads from its driver directory
    // (Debian: /usr/lib/<triplet>/dpdk/pmds-*), which rvs also passes with -d.
    for l in [
        "rte_ethdev",
        "rte_mbuf",
        "rte_mempool",
        "rte_eal",
        "rte_kvargs",
        "rte_bus_vdev",
        "rte_net",
    ] {
        println!("cargo:rustc-link-lib=dylib={l}");
    }
}
