#!/usr/bin/env bash
# Rebuilds the example workloads from their Rust sources into examples/NAME.wasm (WASI preview 1 commands).
# Needs Debian's rustc with the wasm32-wasi standard library: apt-get install rustc libstd-rust-dev-wasm32
# (the rustup toolchain used for the project itself has no wasm target, hence /usr/bin/rustc).
set -euo pipefail
cd "$(dirname "$0")"
RUSTC=${RUSTC_WASM:-/usr/bin/rustc}
for name in hello ticker spin membomb; do
  "$RUSTC" --edition 2021 --target wasm32-wasi -C opt-level=s -C strip=symbols -o "$name.wasm" "$name/main.rs"
  echo "built examples/$name.wasm ($(stat -c %s "$name.wasm") bytes)"
done
# MCU-ABI examples (edge_proto::mcu), from WebAssembly text with the workspace's own `mcu-wat` (the `wat` crate).
(cd .. && cargo run -q -p edge-mcu-sim --bin mcu-wat -- examples/mcu-blink/blink.wat examples/mcu-blink.wasm)
echo "built examples/mcu-blink.wasm ($(stat -c %s mcu-blink.wasm) bytes)"
