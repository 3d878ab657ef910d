//! The log forwarder: echoes guest output to the agent's log and hands it to the session as soon as it exists,
//! batching what is queued. While disconnected the most recent [`LOG_RING`] lines are kept (older ones dropped
//! and counted in [`LogStats`]) and sent on reconnect.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use edge_proto::{Channel, LogLine, Message};
use tokio::sync::{mpsc, watch};

use crate::core::LogStats;
use crate::mail::{Outgoing, Qos};

/// Log lines buffered between guests and the forwarder.
pub const LOG_QUEUE: usize = 4096;
/// Log lines per published batch.
pub const LOG_BATCH: usize = 256;
/// Recent log lines kept while disconnected, sent on reconnect.
pub const LOG_RING: usize = 2048;

/// Runs until the guests' queue closes or the session goes away. `session` is `None` in standalone mode (the
/// agent's log is the only record).
pub async fn forward(
    mut rx: mpsc::Receiver<LogLine>,
    session: Option<mpsc::Sender<Outgoing>>,
    mut connected: watch::Receiver<bool>,
    stats: Arc<LogStats>,
) {
    let mut ring: VecDeque<LogLine> = VecDeque::new();
    let keep = |line: LogLine, ring: &mut VecDeque<LogLine>, online: bool| {
        tracing::info!(target: "guest", instance = %line.instance, "{}", line.line);
        if session.is_none() {
            return;
        }
        if !online {
            stats.buffered.fetch_add(1, Ordering::Relaxed);
        }
        ring.push_back(line);
        if ring.len() > LOG_RING {
            ring.pop_front();
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    };
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(l) => {
                    let online = *connected.borrow();
                    keep(l, &mut ring, online);
                }
                None => return,
            },
            changed = connected.changed() => if changed.is_err() { return },
        }
        let online = *connected.borrow();
        while let Ok(l) = rx.try_recv() {
            keep(l, &mut ring, online);
        }
        let Some(session) = &session else { continue };
        while online && !ring.is_empty() {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while batch.len() < LOG_BATCH && bytes < edge_proto::MAX_PAYLOAD / 2 {
                let Some(l) = ring.pop_front() else { break };
                bytes += l.line.len() + l.instance.len() + 16;
                batch.push(l);
            }
            let out =
                Outgoing { channel: Channel::Logs, qos: Qos::AtMostOnce, retain: false, message: Message::Logs(batch) };
            // Waits while the session is busy: guests' lines then queue upstream, where the overflow is counted.
            if session.send(out).await.is_err() {
                return;
            }
        }
    }
}
