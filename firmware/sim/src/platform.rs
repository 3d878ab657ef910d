//! The host's side of `edge_firmware::platform`: TCP connections through tokio, tokio's clock, a synthetic
//! sensor.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use edge_firmware::platform::{Clock, Connect, Sensors};
use embedded_io_adapters::tokio_1::FromTokio;
use tokio::net::TcpStream;

/// Connections to `host:port`, with Nagle off (see DESIGN.md's pitfalls).
pub struct Tcp {
    pub host: String,
    pub port: u16,
}

impl Connect for Tcp {
    type Error = std::io::Error;
    type Conn<'a> = FromTokio<TcpStream>;

    async fn connect(&mut self) -> Result<Self::Conn<'_>, Self::Error> {
        let stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
        stream.set_nodelay(true)?;
        Ok(FromTokio::new(stream))
    }
}

/// Monotonic milliseconds since the process started, and the system's wall clock.
pub struct TokioClock {
    start: Instant,
}

impl TokioClock {
    pub fn new() -> TokioClock {
        TokioClock { start: Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn unix_ms(&self) -> Option<u64> {
        SystemTime::now().duration_since(UNIX_EPOCH).ok().map(|d| d.as_millis() as u64)
    }

    async fn sleep_until(&self, at_ms: u64) {
        let at = self.start + std::time::Duration::from_millis(at_ms.min(u64::MAX / 4));
        tokio::time::sleep_until(at.into()).await;
    }
}

/// Sensor 0: a temperature in hundredths of a degree that drifts with each read; sensor 1: reads so far.
#[derive(Debug, Default)]
pub struct SimSensors {
    reads: i32,
}

impl Sensors for SimSensors {
    fn read(&mut self, id: i32) -> Option<i32> {
        self.reads = self.reads.wrapping_add(1);
        match id {
            0 => Some(2150 + (self.reads % 40) - 20),
            1 => Some(self.reads),
            _ => None,
        }
    }
}
