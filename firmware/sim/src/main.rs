//! `edge-mcu-sim`: the firmware core (`edge-firmware`) on a host, as a simulated microcontroller node. The same
//! code as on a board, wired to tokio instead: TCP through `embedded-io-adapters`, the clock from tokio's
//! timer, flash as a file in `--data` (`flash.rs`), the OS random source, and a synthetic sensor.
//!
//! `edge-mcu-sim --node NAME --broker mqtt://HOST:PORT --data DIR --join TOKEN [--board pico-2-w] [--ram BYTES]`
//! The token is used once: the identity then lives in the data directory's flash file, and later starts (with
//! or without `--join`) reuse it, running the stored spec at once, broker or not.

mod flash;
mod platform;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use edge_firmware::{board, Config};

#[derive(Debug, Parser)]
#[command(name = "edge-mcu-sim", version, about = "A simulated microcontroller node running the firmware core")]
struct Args {
    /// The node's name.
    #[arg(long)]
    node: String,
    /// The MQTT broker, `mqtt://HOST:PORT`.
    #[arg(long)]
    broker: String,
    /// Where the simulated flash lives (`flash.bin`).
    #[arg(long)]
    data: PathBuf,
    /// Join token (`edgectl token create`), used while the node has no identity yet.
    #[arg(long)]
    join: Option<String>,
    /// Board to simulate: pico-2-w (wasmi), pico-w or esp32-c3 (no WebAssembly engine).
    #[arg(long, default_value = "pico-2-w")]
    board: String,
    /// RAM to announce, in bytes (default: the board's).
    #[arg(long)]
    ram: Option<u64>,
    /// MQTT topic prefix.
    #[arg(long, default_value = edge_proto::topic::DEFAULT_PREFIX)]
    topic_prefix: String,
}

fn trace(line: &str) {
    eprintln!("edge-mcu-sim: {line}");
}

fn main() -> Result<()> {
    let args = Args::parse();
    edge_proto::validate_name(&args.node).map_err(|e| anyhow::anyhow!("--node {:?}: {e}", args.node))?;
    let Some(board) = board::find(&args.board) else {
        let names: Vec<&str> = board::ALL.iter().map(|b| b.name).collect();
        bail!("--board {}: unknown board (known: {})", args.board, names.join(", "));
    };
    let (host, port) = edge_proto::parse_broker_url(&args.broker).map_err(|e| anyhow::anyhow!("--broker: {e}"))?;
    std::fs::create_dir_all(&args.data).with_context(|| format!("cannot create {}", args.data.display()))?;
    let storage = flash::FileFlash::open(&args.data.join("flash.bin"), flash::SLOT_LEN)?;
    let ram_bytes = args.ram.unwrap_or(board.ram_bytes);
    if ram_bytes < board.reserved_ram_bytes && board.wasm {
        bail!("--ram {ram_bytes}: below the {} bytes the firmware keeps for itself", board.reserved_ram_bytes);
    }
    let cfg = Config {
        node: &args.node,
        prefix: &args.topic_prefix,
        join_token: args.join.as_deref(),
        board,
        ram_bytes,
        heartbeat_ms: edge_proto::timing::HEARTBEAT.as_millis() as u64,
        version: env!("CARGO_PKG_VERSION"),
    };
    trace(&format!(
        "node {} on a simulated {} ({} bytes of RAM, engine {})",
        args.node,
        board.name,
        ram_bytes,
        board.engine()
    ));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut net = platform::Tcp { host, port };
    let fatal = runtime.block_on(edge_firmware::run(
        cfg,
        &mut net,
        platform::TokioClock::new(),
        storage,
        rand_core::OsRng,
        platform::SimSensors::default(),
        trace,
    ));
    bail!("{fatal}")
}
