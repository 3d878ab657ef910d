//! The broker's shell: bind, the accept loop (with the TLS handshake when [`Config::tls`] is set), the
//! cloneable [`BrokerHandle`] and shutdown.
//!
//! Shutdown follows the one pattern used across the project (mini-redis): a `watch` flag tells every task to
//! stop, and every task holds a clone of one `mpsc::Sender` that it drops as it ends, so [`Broker::shutdown`]
//! knows all of them are gone when the matching receiver yields `None`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::config::Config;
use crate::connection;
use crate::error::{BindError, LocalError};
use crate::local::{self, LocalReceiver, LocalSender};
use crate::policy::Policy;
use crate::rate::Rate;
use crate::router::Router;
use crate::stats::{bump, Counters, Stats};

/// State shared by the accept loop, connection tasks, local links and handles.
pub(crate) struct Shared {
    /// Guards all sessions, subscriptions and retained messages. Held only for short synchronous work; never
    /// across an await, never while calling the policy.
    router: Mutex<Router>,
    pub(crate) policy: Box<dyn Policy>,
    pub(crate) stats: Arc<Counters>,
    pub(crate) max_packet_size: usize,
    pub(crate) max_connections: usize,
    pub(crate) connect_timeout: Duration,
    /// Each network connection's inbound pace (see [`Config::inbound_bytes`]).
    pub(crate) inbound_bytes: Option<Rate>,
    pub(crate) inbound_packets: Option<Rate>,
    next_conn: AtomicU64,
    /// Set to true once, by shutdown.
    pub(crate) shutdown: watch::Sender<bool>,
}

impl Shared {
    /// The router, even if a thread panicked while holding it: nothing here panics by design, and a poisoned
    /// lock must not turn one bug into a broker that panics on every packet.
    pub(crate) fn router(&self) -> MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn next_conn(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A running broker. Owns the listener: dropping it stops the broker as [`BrokerHandle::shutdown`] does
/// (without waiting); use [`Broker::shutdown`] to wait until every connection is closed.
pub struct Broker {
    handle: BrokerHandle,
    local_addr: SocketAddr,
    /// Yields `None` once the accept loop and every connection task have ended.
    done: mpsc::Receiver<()>,
}

/// Controls a running broker; cheap to clone. Operations on a broker that has shut down are harmless no-ops
/// (or fail with [`LocalError::Closed`]).
#[derive(Clone)]
pub struct BrokerHandle {
    shared: Arc<Shared>,
}

impl Broker {
    /// Listens on `config.addr` and starts accepting on the current tokio runtime. Every accepted socket gets
    /// `TCP_NODELAY` (Nagle's algorithm would otherwise hold small QoS 1 exchanges about 40 ms).
    pub async fn bind(config: Config, policy: impl Policy) -> Result<Broker, BindError> {
        tokio::runtime::Handle::try_current().map_err(|_| BindError::NoRuntime)?;
        let addr = config.addr;
        let listener = TcpListener::bind(addr).await.map_err(|source| BindError::Listen { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| BindError::Listen { addr, source })?;
        let stats = Arc::new(Counters::default());
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            router: Mutex::new(Router::new(&config, stats.clone())),
            policy: Box::new(policy),
            stats,
            max_packet_size: config.max_packet_size,
            max_connections: config.max_connections,
            connect_timeout: config.connect_timeout,
            inbound_bytes: config.inbound_bytes,
            inbound_packets: config.inbound_packets,
            next_conn: AtomicU64::new(0),
            shutdown,
        });
        let (done_tx, done) = mpsc::channel(1);
        let tls = config.tls.map(tokio_rustls::TlsAcceptor::from);
        tokio::spawn(accept_loop(listener, tls, shared.clone(), done_tx));
        Ok(Broker { handle: BrokerHandle { shared }, local_addr, done })
    }

    /// The address actually bound (the real port when `config.addr` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn handle(&self) -> BrokerHandle {
        self.handle.clone()
    }

    /// Closes the listener and every connection, and waits until all of the broker's tasks have ended.
    pub async fn shutdown(mut self) {
        self.handle.shutdown();
        while self.done.recv().await.is_some() {}
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

impl BrokerHandle {
    /// Closes `client_id`'s network connection at once; its Last Will is published (this is not a clean
    /// DISCONNECT). A persistent session stays, and the client may connect again: pair this with the policy
    /// refusing it, or use [`BrokerHandle::revoke`]. Returns true if a connection was closed. Local links are
    /// not affected.
    pub fn disconnect(&self, client_id: &str) -> bool {
        self.shared.router().kick(client_id, false)
    }

    /// Like [`BrokerHandle::disconnect`], and also forgets the client's session and refuses `client_id` at
    /// CONNECT (`NotAuthorized`) until [`BrokerHandle::reinstate`]. Refusal and closing happen under one lock,
    /// so a CONNECT already past the policy cannot slip in between. Returns true if a connection was closed.
    pub fn revoke(&self, client_id: &str) -> bool {
        self.shared.router().kick(client_id, true)
    }

    /// Lifts a revocation. Returns true if `client_id` was revoked.
    pub fn reinstate(&self, client_id: &str) -> bool {
        self.shared.router().reinstate(client_id)
    }

    /// Opens an in-process link with no socket and no policy checks (see [`crate::LocalSender`]). A live local
    /// link with the same client id is replaced (its receiver yields `None`); a network client holding the id
    /// is taken over.
    pub fn local_client(&self, client_id: &str) -> Result<(LocalSender, LocalReceiver), LocalError> {
        local::open(&self.shared, client_id)
    }

    pub fn stats(&self) -> Stats {
        let (sessions, retained, retained_bytes) = {
            let r = self.shared.router();
            (r.sessions(), r.retained(), r.retained_bytes())
        };
        self.shared.stats.snapshot(sessions, retained, retained_bytes)
    }

    /// Starts shutdown and returns at once: the listener closes, every connection and local link ends, and
    /// no new session can attach. Idempotent.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        self.shared.router().close();
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    done: mpsc::Sender<()>,
) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                bump(&shared.stats.connections_accepted);
                let open = shared.stats.connections_open.load(Ordering::Relaxed);
                if open >= shared.max_connections as u64 {
                    bump(&shared.stats.connect_refused);
                    debug!(%peer, "connection limit reached; closing");
                    continue;
                }
                if let Err(e) = stream.set_nodelay(true) {
                    debug!(%peer, error = %e, "cannot set TCP_NODELAY; closing");
                    continue;
                }
                bump(&shared.stats.connections_open);
                let open = connection::OpenGuard(shared.clone());
                match &tls {
                    None => {
                        let deadline = tokio::time::Instant::now() + shared.connect_timeout;
                        tokio::spawn(connection::serve(shared.clone(), open, stream, peer, deadline, done.clone()));
                    }
                    Some(acceptor) => {
                        tokio::spawn(handshake(acceptor.clone(), shared.clone(), open, stream, peer, done.clone()));
                    }
                }
            }
            Err(e) => {
                // Typically out of file descriptors: back off instead of spinning, still listening for shutdown.
                warn!(error = %e, "accept failed");
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
    }
    debug!("listener closed");
}

/// The TLS handshake on its own task (a slow client holds only itself), bounded by the CONNECT timeout, then
/// the connection as over plain TCP. A failed handshake closes the socket before a byte of MQTT is read.
async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
    open: connection::OpenGuard,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    done: mpsc::Sender<()>,
) {
    let mut shutdown = shared.shutdown.subscribe();
    // One deadline for the handshake and the CONNECT after it: a slow client holds its slot no longer than a
    // plain one.
    let deadline = tokio::time::Instant::now() + shared.connect_timeout;
    let accepted = tokio::select! {
        a = tokio::time::timeout_at(deadline, acceptor.accept(stream)) => a,
        _ = shutdown.wait_for(|stop| *stop) => return,
    };
    match accepted {
        Ok(Ok(stream)) => connection::serve(shared.clone(), open, stream, peer, deadline, done).await,
        Ok(Err(e)) => {
            bump(&shared.stats.tls_handshakes_failed);
            debug!(%peer, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            bump(&shared.stats.tls_handshakes_failed);
            debug!(%peer, "TLS handshake timed out");
        }
    }
}
