//! The MQTT connection's I/O: whole packets in and out of fixed buffers over any `embedded-io-async` stream.
//!
//! Receiving: bytes are read into [`RX_BUF`] until [`crate::mqtt::frame`] says a packet is complete; the packet
//! is parsed in place and dropped from the buffer before the next read. A packet larger than the buffer (no
//! controller sends one: the node asks for module chunks that fit) is skipped, byte count by byte count, and
//! counted. Reads are the only awaits raced against timers, and are cancel-safe: the buffer's state changes
//! only after a read returned.
//!
//! Sending: each packet is encoded into [`TX_BUF`] and written whole (`write_all`, then `flush`), never raced,
//! so a packet is never cut halfway on the wire.

use embedded_io_async::{Read, Write};

use crate::mqtt::{self, EncodeError};

/// Largest packet received: a module chunk of [`crate::node::CHUNK`] bytes plus its envelope and topic fit.
pub const RX_BUF: usize = 8 * 1024;
/// Largest packet sent (a batch of log lines is cut to fit).
pub const TX_BUF: usize = 4 * 1024;

/// Why the connection is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// The peer closed the stream.
    Closed,
    /// Reading or writing failed.
    Io(embedded_io_async::ErrorKind),
    /// The broker sent bytes that are not MQTT.
    Malformed,
    /// A packet to send does not fit [`TX_BUF`] (the caller made it too large: dropped, the link stays up).
    TooLarge,
}

fn io<E: embedded_io_async::Error>(e: E) -> LinkError {
    LinkError::Io(e.kind())
}

/// Buffers and counters of one connection (reset by [`Link::reset`] for the next).
pub struct Link {
    rx: [u8; RX_BUF],
    /// Bytes of `rx` holding received data.
    filled: usize,
    /// Bytes of the packet returned last, dropped before the next read.
    consumed: usize,
    /// Bytes still to skip of an oversize packet.
    skipping: usize,
    tx: [u8; TX_BUF],
    pkid: u16,
    /// Oversize packets skipped since start.
    pub skipped: u32,
}

impl Default for Link {
    fn default() -> Self {
        Link { rx: [0; RX_BUF], filled: 0, consumed: 0, skipping: 0, tx: [0; TX_BUF], pkid: 0, skipped: 0 }
    }
}

impl Link {
    pub fn reset(&mut self) {
        self.filled = 0;
        self.consumed = 0;
        self.skipping = 0;
    }

    /// A fresh packet id for QoS 1 (never 0).
    pub fn next_pkid(&mut self) -> u16 {
        self.pkid = self.pkid.wrapping_add(1).max(1);
        self.pkid
    }

    /// Encodes a packet with `encode` and writes it whole.
    pub async fn send<C: Write>(
        &mut self,
        conn: &mut C,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>,
    ) -> Result<(), LinkError> {
        let n = encode(&mut self.tx).map_err(|_| LinkError::TooLarge)?;
        conn.write_all(&self.tx[..n]).await.map_err(io)?;
        conn.flush().await.map_err(io)
    }

    /// Waits for the next whole packet and returns its length; read it with [`Link::packet`].
    pub async fn next<C: Read>(&mut self, conn: &mut C) -> Result<usize, LinkError> {
        if self.consumed > 0 {
            self.drop_front(self.consumed);
            self.consumed = 0;
        }
        loop {
            if self.skipping > 0 {
                let drop = self.skipping.min(self.filled);
                self.drop_front(drop);
                self.skipping -= drop;
            }
            if self.skipping == 0 {
                match mqtt::frame(&self.rx[..self.filled]).map_err(|_| LinkError::Malformed)? {
                    Some((_, total)) if total <= self.filled => {
                        self.consumed = total;
                        return Ok(total);
                    }
                    Some((_, total)) if total > RX_BUF => {
                        self.skipping = total;
                        self.skipped = self.skipped.saturating_add(1);
                        continue;
                    }
                    _ => {}
                }
            }
            let n = conn.read(&mut self.rx[self.filled..]).await.map_err(io)?;
            if n == 0 {
                return Err(LinkError::Closed);
            }
            self.filled += n;
        }
    }

    fn drop_front(&mut self, n: usize) {
        self.rx.copy_within(n..self.filled, 0);
        self.filled -= n;
    }

    /// The packet [`Link::next`] returned.
    pub fn packet(&self, len: usize) -> &[u8] {
        &self.rx[..len.min(self.filled)]
    }
}
