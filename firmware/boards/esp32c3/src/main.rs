//! The firmware core on an ESP32-C3 (riscv32imc: no compare-and-swap atomics, so no wasm engine; the node says
//! so in its hello): this file only wires the board to `edge_firmware::run`.
//!
//! - Wi-Fi: esp-wifi's station, started, connected and reconnected by [`wifi_task`].
//! - Network: embassy-net with DHCP; the broker connection is one TCP socket (`edge_board_glue::net`).
//! - Flash: esp-storage, four slots in the `edge` partition (`partitions.csv`, `SLOTS_BASE`).
//! - Randomness: the hardware RNG, which is a true RNG while the radio runs ([`RadioRng`]).
//! - Heap: esp-alloc over a fixed arena (`HEAP_BYTES`) shared by esp-wifi and the core; it never grows.
//! - Settings: compiled in from the build's environment (docs/firmware.md): `EDGE_WIFI_SSID`,
//!   `EDGE_WIFI_PASSWORD`, `EDGE_BROKER` (required), `EDGE_JOIN_TOKEN`, `EDGE_NODE`, `EDGE_TOPIC_PREFIX`.
#![no_std]
#![no_main]

extern crate alloc;

use edge_board_glue::clock::EmbassyClock;
use edge_board_glue::net::TcpConnect;
use edge_board_glue::{FlashSlots, Settings};
use edge_firmware::board::ESP32_C3;
use edge_firmware::platform::NoSensors;
use embassy_executor::Spawner;
use embassy_net::{Runner, StackResources};
use embassy_time::{Duration, Timer};
use esp_backtrace as _;
use esp_hal::clock::CpuClock;
use esp_hal::rng::Rng;
use esp_hal::timer::systimer::SystemTimer;
use esp_hal::timer::timg::TimerGroup;
use esp_wifi::wifi::{
    AuthMethod, ClientConfiguration, Configuration, WifiController, WifiDevice, WifiEvent, WifiState,
};
use esp_wifi::EspWifiController;
use static_cell::StaticCell;

/// esp-wifi's buffers (about 60 KiB while connected) and the core's messages.
const HEAP_BYTES: usize = 128 * 1024;
/// The `edge` partition of `partitions.csv`: four 64 KiB slots.
const SLOTS_BASE: u32 = 0x3C_0000;
const SLOT_BYTES: u32 = 64 * 1024;

fn trace(line: &str) {
    esp_println::println!("{}", line);
}

#[esp_hal_embassy::main]
async fn main(spawner: Spawner) {
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    esp_alloc::heap_allocator!(size: HEAP_BYTES);

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
    let node = match edge_board_glue::node_name(
        option_env!("EDGE_NODE"),
        ESP32_C3.name,
        &esp_hal::efuse::Efuse::read_base_mac_address(),
    ) {
        Ok(n) => n,
        Err(e) => return halt(&alloc::format!("{e}")).await,
    };
    let slots = match FlashSlots::new(esp_storage::FlashStorage::new(), SLOTS_BASE, SLOT_BYTES) {
        Ok(s) => s,
        Err(e) => return halt(&alloc::format!("flash slots (is the flash 4 MiB?): {e:?}")).await,
    };

    let timg0 = TimerGroup::new(peripherals.TIMG0);
    let rng = Rng::new(peripherals.RNG);
    static WIFI: StaticCell<EspWifiController<'static>> = StaticCell::new();
    let wifi = match esp_wifi::init(timg0.timer0, rng.clone(), peripherals.RADIO_CLK) {
        Ok(w) => WIFI.init(w),
        Err(e) => return halt(&alloc::format!("esp-wifi: {e:?}")).await,
    };
    let (controller, interfaces) = match esp_wifi::wifi::new(wifi, peripherals.WIFI) {
        Ok(pair) => pair,
        Err(e) => return halt(&alloc::format!("Wi-Fi: {e:?}")).await,
    };
    esp_hal_embassy::init(SystemTimer::new(peripherals.SYSTIMER).alarm0);
    // The radio is on from here: the RNG mixes in RF noise (see RadioRng).
    let mut rng = RadioRng(rng);

    let seed = rand_core::RngCore::next_u64(&mut rng);
    static RESOURCES: StaticCell<StackResources<3>> = StaticCell::new();
    let config = embassy_net::Config::dhcpv4(Default::default());
    let (stack, net_runner) = embassy_net::new(interfaces.sta, config, RESOURCES.init(StackResources::new()), seed);
    spawner.must_spawn(net_task(net_runner));
    spawner.must_spawn(wifi_task(controller, settings.ssid, settings.password));

    static RX: StaticCell<[u8; 2048]> = StaticCell::new();
    static TX: StaticCell<[u8; 2048]> = StaticCell::new();
    static HOST: StaticCell<alloc::string::String> = StaticCell::new();
    let host = HOST.init(settings.broker_host.clone());
    let mut net = TcpConnect::new(stack, RX.init([0; 2048]), TX.init([0; 2048]), host, settings.broker_port);

    let cfg = settings.node_config(&node, ESP32_C3, env!("CARGO_PKG_VERSION"));
    trace(&alloc::format!("node {} on {}, broker {}:{}", cfg.node, cfg.board.name, host, settings.broker_port));
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

/// The ESP32-C3's RNG once Wi-Fi runs. Espressif documents it as a true random number generator while the RF
/// subsystem is enabled (RF noise is mixed into its state continuously); esp-hal marks only its ADC-based
/// `Trng` as `CryptoRng` because the RNG alone is pseudo-random with the radio off. Invariant: built only after
/// `esp_wifi::init` has started the radio, which stays on for the node's lifetime.
struct RadioRng(Rng);

impl rand_core::RngCore for RadioRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}

impl rand_core::CryptoRng for RadioRng {}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, WifiDevice<'static>>) {
    runner.run().await
}

/// Starts the station, connects, and reconnects 5 s after the network drops or refuses.
#[embassy_executor::task]
async fn wifi_task(mut controller: WifiController<'static>, ssid: &'static str, pass: &'static str) {
    loop {
        if esp_wifi::wifi::wifi_state() == WifiState::StaConnected {
            controller.wait_for_event(WifiEvent::StaDisconnected).await;
            trace("Wi-Fi disconnected");
            Timer::after(Duration::from_secs(5)).await;
        }
        if !matches!(controller.is_started(), Ok(true)) {
            // Settings::parse checked the lengths (32 and 63 bytes), so these conversions hold.
            let client = ClientConfiguration {
                ssid: ssid.try_into().unwrap_or_default(),
                password: pass.try_into().unwrap_or_default(),
                auth_method: if pass.is_empty() { AuthMethod::None } else { AuthMethod::WPA2Personal },
                ..Default::default()
            };
            if let Err(e) = controller.set_configuration(&Configuration::Client(client)) {
                trace(&alloc::format!("Wi-Fi configuration refused: {e:?}"));
            }
            if let Err(e) = controller.start_async().await {
                trace(&alloc::format!("Wi-Fi did not start: {e:?}"));
                Timer::after(Duration::from_secs(5)).await;
                continue;
            }
        }
        match controller.connect_async().await {
            Ok(()) => trace(&alloc::format!("joined Wi-Fi {ssid}")),
            Err(e) => {
                trace(&alloc::format!("joining Wi-Fi {ssid} failed: {e:?}"));
                Timer::after(Duration::from_secs(5)).await
            }
        }
    }
}
