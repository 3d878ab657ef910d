#!/usr/bin/env bash
# Compile-checks the firmware for the three microcontroller targets and prints each image's flash and static
# RAM. Runs as CI (`.ci/run`) or by hand; `firmware/check.sh --help` says the same as this header.
#
#   Pico W    (RP2040)   thumbv6m-none-eabi            firmware/boards/pico --features rp2040  core, no wasm
#   Pico 2 W  (RP2350)   thumbv8m.main-none-eabihf     firmware/boards/pico --features rp235x  core + wasmi
#   ESP32-C3             riscv32imc-unknown-none-elf   firmware/boards/esp32c3                 core, no wasm
#
# The images compile the core (`edge-firmware`) for each target; it is also type-checked alone for each, with
# and without `wasm`. wasm on thumbv6m and riscv32imc is expected NOT to build (wasmi needs compare-and-swap
# atomics): the script checks that it still fails that way, and says so loudly if it starts to build. Then the
# glue's unit tests and the bytes of a heartbeat, on the host.
#
# Toolchain: Debian's rustc-web 1.85 + rust-web-src (core/alloc built from source with -Zbuild-std; the
# rustup toolchain has only x86_64 and is never used or changed here), lld-19 (linker), llvm-19 (llvm-size,
# llvm-nm). Missing packages are installed with apt-get when running as root, else the script stops and
# names them. Note that rustc-web replaces Debian's `rustc` package (examples/build.sh; docs/firmware.md).
#
# Output: /work/mcu-target (or $MCU_TARGET_DIR), never the workspace's target/. The boards are not workspace
# members; each has its own Cargo.lock resolved for rustc 1.85.
#
# --quick (what .ci/run uses): the board binaries are type-checked (`cargo check`, no codegen, no link) instead
# of built as release LTO images, so there are no flash/RAM figures; every other step is the same. Cold, it
# costs a fraction of the full run's ~27 minutes on 2 cores.
#
# Build-time settings: the images are built with placeholder Wi-Fi/broker settings and zero-filled CYW43
# blobs of the real sizes (the radio firmware is not in the repository), so the figures are a real image's,
# but the images do nothing useful on a board.
set -euo pipefail

if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
quick=false
[ "${1:-}" = "--quick" ] && quick=true

here="$(cd "$(dirname "$0")" && pwd)"
started=$(date +%s)

# --- toolchain ---------------------------------------------------------------------------------------------
need=()
[ -x /usr/bin/rustc ] && /usr/bin/rustc --version 2>/dev/null | grep -q '^rustc 1\.\(8[5-9]\|9[0-9]\)' || need+=(rustc-web)
[ -x /usr/bin/cargo ] && /usr/bin/cargo --version 2>/dev/null | grep -q '^cargo 1\.\(8[5-9]\|9[0-9]\)' || need+=(cargo-web)
[ -d /usr/lib/rustlib/src/rust/library/core ] || need+=(rust-web-src)
[ -x /usr/bin/ld.lld-19 ] || need+=(lld-19)
{ [ -x /usr/bin/llvm-size-19 ] && [ -x /usr/bin/llvm-nm-19 ] && [ -x /usr/bin/llvm-readelf-19 ]; } || need+=(llvm-19)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "check.sh: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "check.sh: missing ${need[*]}: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi

# Only Debian's toolchain: explicit binaries, rustup's proxies out of PATH, no inherited flags.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
unset RUSTUP_TOOLCHAIN RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_TARGET
CARGO=/usr/bin/cargo
for t in THUMBV6M_NONE_EABI THUMBV8M_MAIN_NONE_EABIHF RISCV32IMC_UNKNOWN_NONE_ELF; do
  export "CARGO_TARGET_${t}_LINKER=/usr/bin/ld.lld-19"
done

if [ -z "${MCU_TARGET_DIR:-}" ]; then
  if [ -d /work ] && [ -w /work ]; then MCU_TARGET_DIR=/work/mcu-target; else MCU_TARGET_DIR=/var/tmp/edge-mcu-target; fi
fi
mkdir -p "$MCU_TARGET_DIR"
export CARGO_TARGET_DIR="$MCU_TARGET_DIR/build"

# Placeholder settings and radio blobs (see the header).
blobs="$MCU_TARGET_DIR/cyw43-placeholder"
mkdir -p "$blobs"
[ "$(stat -c %s "$blobs/43439A0.bin" 2>/dev/null || echo 0)" = 231077 ] || head -c 231077 /dev/zero >"$blobs/43439A0.bin"
[ "$(stat -c %s "$blobs/43439A0_clm.bin" 2>/dev/null || echo 0)" = 984 ] || head -c 984 /dev/zero >"$blobs/43439A0_clm.bin"
export CYW43_FIRMWARE_DIR="$blobs"
export EDGE_WIFI_SSID=compile-check EDGE_WIFI_PASSWORD=compile-check EDGE_BROKER=mqtt://192.0.2.1:1883
unset EDGE_JOIN_TOKEN EDGE_NODE EDGE_TOPIC_PREFIX

echo "check.sh: $(/usr/bin/rustc --version), $($CARGO --version), ld.lld-19; output in $MCU_TARGET_DIR"
failures=0
step() { echo; echo "== $*"; }
kib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'; }

# Each crate is built from its own directory, so its .cargo/config.toml (target settings) applies. The lock
# is not frozen (the core's dependencies may have moved since it was written); a lock that changed is named.
cargo_in() { # build|check DIR CARGO-ARGS...
  local sub=$1 dir="$here/$2"; shift 2
  local lock_before
  lock_before=$(cat "$dir/Cargo.lock" 2>/dev/null || true)
  if (cd "$dir" && $CARGO "$sub" --release -Zbuild-std=core,alloc "$@"); then
    [ "$lock_before" = "$(cat "$dir/Cargo.lock" 2>/dev/null || true)" ] ||
      echo "NOTE: ${dir#"$here/"}/Cargo.lock changed: commit the updated lock"
  else
    echo "FAILED: ${dir#"$here/"}: cargo $sub $*"
    failures=$((failures + 1))
    return 1
  fi
}
# The board images: built (release, LTO), or with --quick only type-checked.
build() { if $quick; then cargo_in check "$@"; else cargo_in build "$@"; fi; }

# --- the pure parts of the glue, on the host ---------------------------------------------------------------
step "edge-board-glue: unit tests (host, rustc 1.85)"
log="$MCU_TARGET_DIR/glue-test.log"
if (cd "$here/boards/glue" && $CARGO test --lib) >"$log" 2>&1; then
  grep '^test result' "$log"
else
  echo "FAILED: glue unit tests ($log):"
  grep -E '^test .*FAILED|panicked|^error' "$log" | head -n 20
  failures=$((failures + 1))
fi

# --- the board images (they build the core too) ------------------------------------------------------------
images=()
step "Pico W: edge-board-pico --features rp2040, thumbv6m-none-eabi"
build boards/pico --features rp2040 --target thumbv6m-none-eabi &&
  images+=("thumbv6m-none-eabi|pico-w (RP2040)|$CARGO_TARGET_DIR/thumbv6m-none-eabi/release/edge-board-pico")
step "Pico 2 W: edge-board-pico --features rp235x (core + wasmi), thumbv8m.main-none-eabihf"
build boards/pico --features rp235x --target thumbv8m.main-none-eabihf &&
  images+=("thumbv8m.main-none-eabihf|pico-2-w (RP2350)|$CARGO_TARGET_DIR/thumbv8m.main-none-eabihf/release/edge-board-pico")
step "ESP32-C3: edge-board-esp32c3, riscv32imc-unknown-none-elf"
build boards/esp32c3 --target riscv32imc-unknown-none-elf &&
  images+=("riscv32imc-unknown-none-elf|esp32-c3|$CARGO_TARGET_DIR/riscv32imc-unknown-none-elf/release/edge-board-esp32c3")

# --- the core alone ----------------------------------------------------------------------------------------
# The images above already compiled the core for each target (without wasm on thumbv6m and riscv32imc, with
# it on thumbv8m); here it is type-checked alone for every target and feature set (`cargo check`: the images'
# LTO builds share no artifacts with a library build, and a second codegen would double the time). Through
# the glue crate without its `embassy` feature: that is the core with edge-proto and edge-trust plus the
# glue's pure parts, and the glue is the root of its own workspace, so `--features edge-firmware/wasm` is
# allowed (cargo refuses features on a `-p` package outside the workspace).
step "edge-firmware alone (cargo check): thumbv6m, thumbv8m with and without wasm, riscv32imc"
for spec in "thumbv6m-none-eabi" "thumbv8m.main-none-eabihf" "thumbv8m.main-none-eabihf edge-firmware/wasm" \
  "riscv32imc-unknown-none-elf"; do
  read -r target features <<<"$spec"
  cargo_in check boards/glue --quiet --target "$target" ${features:+--features "$features"} &&
    echo "$target${features:+ +wasm}: ok" || true
done

step "edge-firmware with wasm where there is no compare-and-swap (expected to fail)"
for target in thumbv6m-none-eabi riscv32imc-unknown-none-elf; do
  log="$MCU_TARGET_DIR/wasm-$target.log"
  if (cd "$here/boards/glue" && $CARGO check --release -Zbuild-std=core,alloc --features edge-firmware/wasm \
    --target "$target") >"$log" 2>&1; then
    echo "NEWS: edge-firmware/wasm now BUILDS for $target: the board could run wasm (board.rs says it cannot)"
  elif grep -q 'alloc::sync\|requires atomic CAS' "$log"; then
    echo "$target +wasm: does not build, as expected: $(grep -m1 -o 'unresolved import `[^`]*`\|`[a-z_]*` requires atomic CAS' "$log") ($(grep -m1 -o 'could not compile `[^`]*`' "$log"))"
  else
    echo "FAILED: edge-firmware/wasm on $target failed for another reason than missing CAS atomics ($log):"
    grep -m5 '^error' "$log" || tail -n 5 "$log"
    failures=$((failures + 1))
  fi
done

# --- figures ------------------------------------------------------------------------------------------------
# flash      = allocated PROGBITS sections (what is programmed: code, read-only data, .data's initial values)
# static RAM = allocated sections placed in RAM (.data, .bss, heap arena, and on the ESP32-C3 the code copied
#              to IRAM); the stack is what RAM is left.
# The split is by symbol (llvm-nm) and approximate: LTO inlines code into its callers.
figures() { # TARGET LABEL ELF
  local target=$1 label=$2 elf=$3 ram_ranges ram_total
  case $target in
  thumb*) ram_ranges="20000000-2fffffff" ;;
  riscv32imc*) ram_ranges="3fc80000-3fcdffff 4037c000-403dffff" ;;
  esac
  case $target in
  thumbv6m*) ram_total=$((264 * 1024)) ;;
  thumbv8m*) ram_total=$((520 * 1024)) ;;
  riscv32imc*) ram_total=$((400 * 1024)) ;;
  esac
  local blob=0 sections split
  [[ $target == thumb* ]] && blob=$((231077 + 984))
  sections=$(llvm-readelf-19 -S -W "$elf" | awk -v ranges="$ram_ranges" '
    function hex(s,   i, v, d) { v = 0; s = tolower(s); for (i = 1; i <= length(s); i++) { d = index("0123456789abcdef", substr(s, i, 1)) - 1; v = v * 16 + d } return v }
    BEGIN { n = split(ranges, r, " "); for (i = 1; i <= n; i++) { split(r[i], b, "-"); lo[i] = hex(b[1]); hi[i] = hex(b[2]) } }
    /^ *\[ *[0-9]+\]/ {
      sub(/^ *\[ *[0-9]+\] */, "");
      name = $1; type = $2; addr = hex($3); size = hex($5); flags = $7;
      if (flags !~ /A/ || size == 0 || name ~ /dummy/) next;
      if (type == "PROGBITS") flash += size;
      for (i = 1; i <= n; i++) if (addr >= lo[i] && addr <= hi[i]) { ram += size; break }
    }
    END { printf "%d %d\n", flash, ram }')
  split=$(llvm-nm-19 -S --size-sort "$elf" 2>/dev/null | awk '
    function hex(s,   i, v, d) { v = 0; s = tolower(s); for (i = 1; i <= length(s); i++) { d = index("0123456789abcdef", substr(s, i, 1)) - 1; v = v * 16 + d } return v }
    NF == 4 {
      size = hex($2); kind = $3; sym = $4;
      if (kind ~ /[bB]/) { if (sym ~ /HEAP/) heap += size; next }
      if (kind !~ /[tTrRdD]/) next;
      if (sym ~ /wasmi|wasmparser/) w += size;
      else if (sym ~ /ed25519|curve25519|sha2|hmac|subtle|zeroize/) c += size;
      else if (sym ~ /edge_firmware|edge_proto|edge_trust|postcard|serde/) f += size;
    }
    END { printf "%d %d %d %d\n", f, c, w, heap }')
  read -r flash ram <<<"$sections"
  read -r core crypto wasmi heap <<<"$split"
  printf '%-28s %-18s flash %8d B (%6.1f KiB)   static RAM %7d B (%5.1f KiB) of %3d KiB, heap arena %3d KiB of it\n' \
    "$target" "$label" "$flash" "$(kib "$flash")" "$ram" "$(kib "$ram")" $((ram_total / 1024)) $((heap / 1024))
  printf '%-28s %-18s   flash by symbol (approximate: LTO inlines across crates): core+proto+trust %d KiB, crypto %d KiB, wasmi %d KiB, radio firmware %d KiB, rest (HAL, Wi-Fi, net, executor, core/alloc) %d KiB\n' \
    "" "" $((core / 1024)) $((crypto / 1024)) $((wasmi / 1024)) $((blob / 1024)) $(((flash - core - crypto - wasmi - blob) / 1024))
  # Berkeley format for comparison; on the ESP32-C3 it also counts esp-hal's address-space placeholders.
  llvm-size-19 "$elf" | sed 1d | awk '{ printf "%-28s %-18s   llvm-size: text %s data %s bss %s\n", "", "", $1, $2, $3 }'
}

step "Bytes per heartbeat (host; the same encoder as on the boards)"
(cd "$here/boards/glue" && $CARGO run --quiet --example wire_budget) 2>"$MCU_TARGET_DIR/wire-budget.log" ||
  { echo "FAILED: wire_budget ($MCU_TARGET_DIR/wire-budget.log)"; failures=$((failures + 1)); }

step "Figures (release, opt-level s, LTO)"
$quick && echo "(none with --quick: the images were type-checked, not built)" && images=()
for img in "${images[@]}"; do
  IFS='|' read -r target label elf <<<"$img"
  figures "$target" "$label" "$elf"
done

echo
echo "check.sh: $((($(date +%s) - started) / 60)) min $((($(date +%s) - started) % 60)) s"
if [ "$failures" -gt 0 ]; then
  echo "check.sh: $failures failed"
  exit 1
fi
echo "check.sh: firmware compile check passed"
