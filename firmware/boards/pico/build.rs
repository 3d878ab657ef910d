//! Puts the chip's `memory.x` (chosen by feature) where cortex-m-rt's `link.x` finds it, and passes the
//! linker scripts: `link.x` (cortex-m-rt), `link-rp.x` (RP2040's boot2 block), `defmt.x` (defmt's sections).

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let rp2040 = env::var_os("CARGO_FEATURE_RP2040").is_some();
    let rp235x = env::var_os("CARGO_FEATURE_RP235X").is_some();
    let memory = match (rp2040, rp235x) {
        (true, false) => "memory-rp2040.x",
        (false, true) => "memory-rp235x.x",
        // main.rs names the problem with compile_error!; link nothing here.
        _ => return,
    };
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy(memory, out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory-rp2040.x");
    println!("cargo:rerun-if-changed=memory-rp235x.x");
    println!("cargo:rustc-link-arg-bins=--nmagic");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    if rp2040 {
        println!("cargo:rustc-link-arg-bins=-Tlink-rp.x");
    }
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
}
