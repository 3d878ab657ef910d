//! Broker connections over embassy-net: one TCP socket on buffers the board lends for the node's lifetime,
//! reopened on each `connect` (the core reconnects with back-off after any failure).
//!
//! Each step is bounded, so a node without Wi-Fi or DHCP never hangs in `connect`: it fails with the step that
//! did not happen and the core tries again later.

use edge_firmware::platform::Connect;
use embassy_net::dns::DnsQueryType;
use embassy_net::tcp::TcpSocket;
use embassy_net::Stack;
use embassy_time::{with_timeout, Duration};

/// Wi-Fi association plus DHCP.
const NETWORK_WAIT: Duration = Duration::from_secs(30);
const DNS_WAIT: Duration = Duration::from_secs(10);
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// A connection that moves no byte for this long (the peer gone without a FIN or RST) is aborted; the core's
/// MQTT keep-alive (15 s) keeps a healthy one busier than that.
const IDLE_ABORT: Duration = Duration::from_secs(60);

/// Why a broker connection could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    /// No IPv4 configuration (no Wi-Fi link or no DHCP lease) within 30 s.
    NoNetwork,
    Dns(embassy_net::dns::Error),
    DnsTimeout,
    /// The name resolved to no IPv4 address.
    NoAddress,
    Tcp(embassy_net::tcp::ConnectError),
    TcpTimeout,
}

/// Opens TCP connections to the broker on `stack`.
pub struct TcpConnect<'s> {
    stack: Stack<'s>,
    rx: &'s mut [u8],
    tx: &'s mut [u8],
    host: &'s str,
    port: u16,
}

impl<'s> TcpConnect<'s> {
    /// `rx` and `tx` are the socket's buffers: the core's MQTT link holds whole packets itself, so 1-2 KiB each
    /// is enough.
    pub fn new(stack: Stack<'s>, rx: &'s mut [u8], tx: &'s mut [u8], host: &'s str, port: u16) -> TcpConnect<'s> {
        TcpConnect { stack, rx, tx, host, port }
    }
}

impl<'s> Connect for TcpConnect<'s> {
    type Error = ConnectError;
    type Conn<'a>
        = TcpSocket<'a>
    where
        Self: 'a;

    async fn connect(&mut self) -> Result<TcpSocket<'_>, ConnectError> {
        with_timeout(NETWORK_WAIT, self.stack.wait_config_up()).await.map_err(|_| ConnectError::NoNetwork)?;
        // An IPv4 literal resolves without a query.
        let addrs = with_timeout(DNS_WAIT, self.stack.dns_query(self.host, DnsQueryType::A))
            .await
            .map_err(|_| ConnectError::DnsTimeout)?
            .map_err(ConnectError::Dns)?;
        let addr = *addrs.first().ok_or(ConnectError::NoAddress)?;
        let mut socket = TcpSocket::new(self.stack, &mut *self.rx, &mut *self.tx);
        // MQTT packets are small and each waits for its answer: Nagle would hold them back.
        socket.set_nagle_enabled(false);
        socket.set_timeout(Some(IDLE_ABORT));
        with_timeout(CONNECT_WAIT, socket.connect((addr, self.port)))
            .await
            .map_err(|_| ConnectError::TcpTimeout)?
            .map_err(ConnectError::Tcp)?;
        Ok(socket)
    }
}
