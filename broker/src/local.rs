//! In-process links: the embedding program (the controller) as a client of its own broker, with no socket.
//!
//! A local link is a session like any other — same trie, same retained store, same QoS downgrade — with three
//! differences: it bypasses the policy (it *is* the authority); its QoS 1 messages are delivered when
//! [`LocalReceiver::recv`] returns them (no PUBACK); and it is never disconnected for being slow: when its
//! queue ([`crate::Config::max_local_queued_messages`]) is full, new messages for it are dropped and counted in
//! `dropped_queue_full`. Its session is always clean: dropping the [`LocalReceiver`] ends it, and the
//! [`LocalSender`]s then fail with [`LocalError::Closed`].
//!
//! Publishing is synchronous (a short lock, no await), so it never blocks a runtime thread on a full channel.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use rumqttc::mqttbytes::v4::SubscribeReasonCode;
use rumqttc::mqttbytes::QoS;

use crate::broker::Shared;
use crate::connection::MAX_CLIENT_ID;
use crate::error::LocalError;
use crate::message::{cap_qos, Message};
use crate::policy::Identity;
use crate::router::Attach;
use crate::session::{ConnId, Outgoing, SessionId, Signal};
use crate::topic::{valid_filter, valid_topic_name, SHARED_PREFIX};

/// Messages taken from the session per lock by [`LocalReceiver::recv`].
const TAKE_MAX: usize = 256;

/// Publishes and (un)subscribes for a local link. Cheap to clone.
#[derive(Clone)]
pub struct LocalSender {
    shared: Arc<Shared>,
    session: SessionId,
    conn: ConnId,
}

/// Receives the messages a local link's subscriptions match.
pub struct LocalReceiver {
    shared: Arc<Shared>,
    session: SessionId,
    conn: ConnId,
    signal: Arc<Signal>,
    buffer: VecDeque<Message>,
    batch: Vec<Outgoing>,
}

pub(crate) fn open(shared: &Arc<Shared>, client_id: &str) -> Result<(LocalSender, LocalReceiver), LocalError> {
    if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID {
        return Err(LocalError::InvalidClientId { max: MAX_CLIENT_ID });
    }
    let conn = ConnId(shared.next_conn());
    let signal = Arc::new(Signal::default());
    let attached = shared
        .router()
        .attach(Attach {
            client_id: client_id.into(),
            identity: Identity::anonymous(),
            clean: true,
            will: None,
            local: true,
            conn,
            signal: signal.clone(),
        })
        .map_err(LocalError::Refused)?;
    let session = attached.session;
    let sender = LocalSender { shared: shared.clone(), session, conn };
    let receiver =
        LocalReceiver { shared: shared.clone(), session, conn, signal, buffer: VecDeque::new(), batch: Vec::new() };
    Ok((sender, receiver))
}

impl LocalSender {
    /// Publishes like a client would (QoS 2 is served as QoS 1; `retain` with an empty payload clears the
    /// topic's retained message). Also the way to restore persisted retained messages after a restart.
    pub fn publish(&self, topic: &str, payload: impl Into<Bytes>, qos: QoS, retain: bool) -> Result<(), LocalError> {
        if !valid_topic_name(topic) {
            return Err(LocalError::InvalidTopic);
        }
        let payload = payload.into();
        let max = self.shared.max_packet_size;
        if payload.len() > max {
            return Err(LocalError::TooLarge { size: payload.len(), max });
        }
        let message = Message::new(topic, payload, cap_qos(qos), retain);
        if self.shared.router().publish(self.session, self.conn, message) {
            Ok(())
        } else {
            Err(LocalError::Closed)
        }
    }

    /// Subscribes (replacing the QoS of an existing subscription to the same filter) and queues the matching
    /// retained messages. Returns the granted QoS.
    pub fn subscribe(&self, filter: &str, qos: QoS) -> Result<QoS, LocalError> {
        if !valid_filter(filter) || filter.starts_with(SHARED_PREFIX) {
            return Err(LocalError::InvalidFilter);
        }
        let granted = cap_qos(qos);
        let codes = self
            .shared
            .router()
            .subscribe(self.session, self.conn, vec![(filter.to_owned(), Some(granted))])
            .ok_or(LocalError::Closed)?;
        match codes.first() {
            Some(SubscribeReasonCode::Success(q)) => Ok(*q),
            _ => Err(LocalError::SubscriptionRefused),
        }
    }

    pub fn unsubscribe(&self, filter: &str) -> Result<(), LocalError> {
        if self.shared.router().unsubscribe(self.session, self.conn, &[filter.to_owned()]) {
            Ok(())
        } else {
            Err(LocalError::Closed)
        }
    }
}

impl LocalReceiver {
    /// The next message, waiting for one; `None` once the link is closed (taken over by another local link
    /// with the same client id, or the broker shut down). Cancel-safe: a message is only removed from the
    /// session when it is returned or buffered here.
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            if let Some(m) = self.try_recv() {
                return Some(m);
            }
            if self.signal.is_killed() {
                return None;
            }
            // A wake that lands after `try_recv` found nothing leaves a permit, so this cannot miss it.
            tokio::select! {
                _ = self.signal.woken() => {}
                _ = self.signal.killed() => {}
            }
        }
    }

    /// The next message if one is ready.
    pub fn try_recv(&mut self) -> Option<Message> {
        if self.buffer.is_empty() {
            self.batch.clear();
            let taken = self.shared.router().take(self.session, self.conn, TAKE_MAX, usize::MAX, &mut self.batch);
            if taken.is_some() {
                self.buffer.extend(self.batch.drain(..).map(|o| o.message));
            }
        }
        self.buffer.pop_front()
    }
}

impl Drop for LocalReceiver {
    fn drop(&mut self) {
        self.shared.router().detach(self.session, self.conn, false);
    }
}
