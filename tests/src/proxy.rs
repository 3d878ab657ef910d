//! A TCP proxy that can be cut and healed: a network partition between one node and its broker, without
//! touching the broker or the other nodes, and without privileges. Cutting closes every proxied connection
//! and refuses new ones (accepted, then closed at once), as a dead link does from the node's point of view.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    open: Arc<AtomicBool>,
    /// Bumped on every cut: connections from an older epoch end.
    epoch: watch::Sender<u64>,
    counter: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards `127.0.0.1:{port}` (picked by the kernel) to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let open = Arc::new(AtomicBool::new(true));
        let (epoch, _) = watch::channel(0u64);
        let counter = Arc::new(AtomicU64::new(0));
        let (o, e) = (open.clone(), epoch.clone());
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = e.subscribe();
                let at = *cut.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else { return };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (mut ri, mut wi) = inbound.into_split();
                    let (mut ro, mut wo) = outbound.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut ri, &mut wo) => {}
                        _ = tokio::io::copy(&mut ro, &mut wi) => {}
                        _ = cut.wait_for(|e| *e != at) => {}
                    }
                });
            }
        });
        Proxy { port, open, epoch, counter, task }
    }

    /// Partitions: closes every proxied connection and refuses new ones until [`Proxy::heal`].
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        self.epoch.send_replace(n);
    }

    pub fn heal(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}
