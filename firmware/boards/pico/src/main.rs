//! The firmware core on a Raspberry Pi Pico W (feature `rp2040`, thumbv6m, no wasm engine) or Pico 2 W
//! (feature `rp235x`, thumbv8m, wasmi): this file only wires the board to `edge_firmware::run`.
//!
//! - Wi-Fi: the CYW43439 over PIO SPI (cyw43 + cyw43-pio), joined and re-joined by [`wifi_task`].
//! - Network: embassy-net with DHCP; the broker connection is one TCP socket (`edge_board_glue::net`).
//! - Flash: the chip's QSPI flash through embassy-rp, four slots at its end (`SLOTS_*`, kept out of the image
//!   by `memory-*.x`).
//! - Randomness: the ring oscillator (RP2040) or the TRNG (RP2350).
//! - Heap: a fixed arena (`HEAP_BYTES`) the core and wasmi allocate from; it never grows.
//! - Settings: compiled in from the build's environment (docs/firmware.md): `EDGE_WIFI_SSID`,
//!   `EDGE_WIFI_PASSWORD`, `EDGE_BROKER` (required), `EDGE_JOIN_TOKEN`, `EDGE_NODE`, `EDGE_TOPIC_PREFIX`.
#![no_std]
#![no_main]

#[cfg(not(any(feature = "rp2040", feature = "rp235x")))]
compile_error!("choose the board: --features rp2040 (Pico W) or --features rp235x (Pico 2 W)");
#[cfg(all(feature = "rp2040", feature = "rp235x"))]
compile_error!("features rp2040 and rp235x are two different boards: choose one");

use cyw43::JoinOptions;
use cyw43_pio::PioSpi;
use defmt_rtt as _;
use edge_board_glue::clock::EmbassyClock;
use edge_board_glue::net::TcpConnect;
use edge_board_glue::{FlashSlots, Settings};
use edge_firmware::platform::NoSensors;
use embassy_executor::Spawner;
use embassy_net::{Stack, StackResources};
use embassy_rp::bind_interrupts;
use embassy_rp::flash::{Blocking, Flash};
use embassy_rp::gpio::{Level, Output};
use embassy_rp::peripherals::{DMA_CH0, PIO0};
use embassy_rp::pio::{InterruptHandler, Pio};
use embassy_time::{Duration, Timer};
use embedded_alloc::LlffHeap;
use panic_probe as _;
use static_cell::StaticCell;

#[cfg(feature = "rp2040")]
mod chip {
    pub const BOARD: edge_firmware::board::Board = edge_firmware::board::PICO_W;
    pub const FLASH_BYTES: usize = 2 * 1024 * 1024;
    /// No guests on this board: the heap is the core's (protocol messages, the applied spec).
    pub const HEAP_BYTES: usize = 96 * 1024;
    pub const SLOT_BYTES: u32 = 64 * 1024;
    pub const SPI_DIVIDER: fixed::FixedU32<fixed::types::extra::U8> = cyw43_pio::DEFAULT_CLOCK_DIVIDER;
}
#[cfg(feature = "rp235x")]
mod chip {
    pub const BOARD: edge_firmware::board::Board = edge_firmware::board::PICO_2_W;
    pub const FLASH_BYTES: usize = 4 * 1024 * 1024;
    /// The core's share plus guests' linear memories and wasmi's code (the board announces 320 KiB for guests).
    pub const HEAP_BYTES: usize = 384 * 1024;
    /// A slot holds the spec and the modules its instances need (up to 128 KiB each).
    pub const SLOT_BYTES: u32 = 256 * 1024;
    /// The Pico 2 W's radio module wants a slower SPI clock than the Pico W's.
    pub const SPI_DIVIDER: fixed::FixedU32<fixed::types::extra::U8> = cyw43_pio::RM2_CLOCK_DIVIDER;
}

/// The four slots end the flash; `memory-*.x` ends the image before them.
const SLOTS_BASE: u32 = chip::FLASH_BYTES as u32 - 4 * chip::SLOT_BYTES;

#[global_allocator]
static HEAP: LlffHeap = LlffHeap::empty();

#[cfg(feature = "rp2040")]
bind_interrupts!(struct Irqs {
    PIO0_IRQ_0 => InterruptHandler<PIO0>;
});
#[cfg(feature = "rp235x")]
bind_interrupts!(struct Irqs {
    PIO0_IRQ_0 => InterruptHandler<PIO0>;
    TRNG_IRQ => embassy_rp::trng::InterruptHandler<embassy_rp::peripherals::TRNG>;
});

fn trace(line: &str) {
    defmt::info!("{=str}", line);
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    // SAFETY: once, before anything allocates; the arena is a static only the allocator touches.
    #[allow(unsafe_code)]
    unsafe {
        embedded_alloc::init!(HEAP, chip::HEAP_BYTES);
    }
    let p = embassy_rp::init(Default::default());

    let settings = match Settings::parse(
        env!("EDGE_WIFI_SSID", "set EDGE_WIFI_SSID to the Wi-Fi network's name when building"),
        env!("EDGE_WIFI_PASSWORD", "set EDGE_WIFI_PASSWORD when building (empty for an open network)"),
        env!("EDGE_BROKER", "set EDGE_BROKER=mqtt://HOST:PORT when building"),
        option_env!("EDGE_JOIN_TOKEN"),
        option_env!("EDGE_TOPIC_PREFIX"),
    ) {
        Ok(s) => s,
        Err(e) => return halt(&alloc::format!("this image was built with a bad setting: {e}")).await,
    };

    let mut flash = Flash::<_, Blocking, { chip::FLASH_BYTES }>::new_blocking(p.FLASH);
    let chip_id = chip_id(&mut flash);
    let node = match edge_board_glue::node_name(option_env!("EDGE_NODE"), chip::BOARD.name, &chip_id) {
        Ok(n) => n,
        Err(e) => return halt(&alloc::format!("{e}")).await,
    };
    let slots = match FlashSlots::new(flash, SLOTS_BASE, chip::SLOT_BYTES) {
        Ok(s) => s,
        Err(e) => return halt(&alloc::format!("flash slots: {e:?}")).await,
    };
    #[cfg(feature = "rp2040")]
    let mut rng = embassy_rp::clocks::RoscRng;
    #[cfg(feature = "rp235x")]
    let mut rng = embassy_rp::trng::Trng::new(p.TRNG, Irqs, embassy_rp::trng::Config::default());

    // The radio: power and chip select on GPIO 23/25, SPI data on 24, clock on 29 (the Pico W's wiring).
    let fw = include_bytes!(concat!(env!("CYW43_FIRMWARE_DIR"), "/43439A0.bin"));
    let clm = include_bytes!(concat!(env!("CYW43_FIRMWARE_DIR"), "/43439A0_clm.bin"));
    let pwr = Output::new(p.PIN_23, Level::Low);
    let cs = Output::new(p.PIN_25, Level::High);
    let mut pio = Pio::new(p.PIO0, Irqs);
    let spi = PioSpi::new(&mut pio.common, pio.sm0, chip::SPI_DIVIDER, pio.irq0, cs, p.PIN_24, p.PIN_29, p.DMA_CH0);
    static STATE: StaticCell<cyw43::State> = StaticCell::new();
    let (device, mut control, runner) = cyw43::new(STATE.init(cyw43::State::new()), pwr, spi, fw).await;
    spawner.must_spawn(cyw43_task(runner));
    control.init(clm).await;
    control.set_power_management(cyw43::PowerManagementMode::PowerSave).await;

    let seed = rand_core::RngCore::next_u64(&mut rng);
    // Sockets: the broker connection and DNS.
    static RESOURCES: StaticCell<StackResources<3>> = StaticCell::new();
    let config = embassy_net::Config::dhcpv4(Default::default());
    let (stack, net_runner) = embassy_net::new(device, config, RESOURCES.init(StackResources::new()), seed);
    spawner.must_spawn(net_task(net_runner));
    spawner.must_spawn(wifi_task(control, stack, settings.ssid, settings.password));

    static RX: StaticCell<[u8; 2048]> = StaticCell::new();
    static TX: StaticCell<[u8; 2048]> = StaticCell::new();
    static HOST: StaticCell<alloc::string::String> = StaticCell::new();
    let host = HOST.init(settings.broker_host.clone());
    let mut net = TcpConnect::new(stack, RX.init([0; 2048]), TX.init([0; 2048]), host, settings.broker_port);

    let cfg = settings.node_config(&node, chip::BOARD, env!("CARGO_PKG_VERSION"));
    defmt::info!(
        "node {=str} on {=str}, broker {=str}:{=u16}",
        cfg.node,
        cfg.board.name,
        host.as_str(),
        settings.broker_port
    );
    let fatal = edge_firmware::run(cfg, &mut net, EmbassyClock, slots, rng, NoSensors, trace).await;
    halt(&alloc::format!("the node stopped: {fatal}")).await
}

/// Logs why the node cannot go on, then parks (a reset or a re-flash is what helps).
async fn halt(why: &str) {
    loop {
        trace(why);
        Timer::after(Duration::from_secs(30)).await;
    }
}

/// The flash chip's unique id (RP2040) or the chip id in OTP (RP2350): the default node name's suffix.
#[cfg(feature = "rp2040")]
fn chip_id(flash: &mut Flash<'_, embassy_rp::peripherals::FLASH, Blocking, { chip::FLASH_BYTES }>) -> [u8; 8] {
    let mut id = [0u8; 8];
    // A failed read leaves zeros: the name is then only less unique, and EDGE_NODE can set one.
    let _ = flash.blocking_unique_id(&mut id);
    id
}
#[cfg(feature = "rp235x")]
fn chip_id(_flash: &mut Flash<'_, embassy_rp::peripherals::FLASH, Blocking, { chip::FLASH_BYTES }>) -> [u8; 8] {
    embassy_rp::otp::get_chipid().unwrap_or(0).to_be_bytes()
}

#[embassy_executor::task]
async fn cyw43_task(runner: cyw43::Runner<'static, Output<'static>, PioSpi<'static, PIO0, 0, DMA_CH0>>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, cyw43::NetDriver<'static>>) -> ! {
    runner.run().await
}

/// Joins the network and joins again whenever the link drops, 5 s apart while the network refuses.
#[embassy_executor::task]
async fn wifi_task(
    mut control: cyw43::Control<'static>,
    stack: Stack<'static>,
    ssid: &'static str,
    pass: &'static str,
) {
    loop {
        let options = if pass.is_empty() { JoinOptions::new_open() } else { JoinOptions::new(pass.as_bytes()) };
        match control.join(ssid, options).await {
            Ok(()) => {
                defmt::info!("joined Wi-Fi {=str}", ssid);
                stack.wait_link_down().await;
                defmt::warn!("Wi-Fi link down");
            }
            Err(e) => {
                defmt::warn!("joining Wi-Fi {=str} failed: status {=u32}", ssid, e.status);
                Timer::after(Duration::from_secs(5)).await;
            }
        }
    }
}

extern crate alloc;
