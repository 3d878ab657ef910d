//! The application message as the broker stores, queues and hands it to local clients.

use std::sync::Arc;

use bytes::Bytes;
use rumqttc::mqttbytes::QoS;

/// One application message. Cloning is cheap (the topic and payload are shared), which is what lets one
/// publish be queued for many subscribers without copying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub topic: Arc<str>,
    pub payload: Bytes,
    /// For a message handed out: the QoS it is delivered with (the lower of the published and the granted QoS).
    pub qos: QoS,
    /// For a message handed out: true only when it comes from the retained store because of a new subscription
    /// (MQTT 3.1.1 section 3.3.1.3); messages forwarded to established subscriptions carry false.
    pub retain: bool,
}

impl Message {
    pub fn new(topic: impl Into<Arc<str>>, payload: impl Into<Bytes>, qos: QoS, retain: bool) -> Message {
        Message { topic: topic.into(), payload: payload.into(), qos, retain }
    }

    /// Bytes this message costs in a bounded queue or store (topic and payload; fixed overheads ignored).
    pub(crate) fn cost(&self) -> usize {
        self.topic.len().saturating_add(self.payload.len())
    }

    /// The same message delivered with `qos` and `retain`.
    pub(crate) fn delivered(&self, qos: QoS, retain: bool) -> Message {
        Message { topic: self.topic.clone(), payload: self.payload.clone(), qos, retain }
    }
}

/// The lower of two QoS levels, with QoS 2 treated as 1: this broker delivers at most at-least-once.
pub(crate) fn min_qos(a: QoS, b: QoS) -> QoS {
    if a == QoS::AtMostOnce || b == QoS::AtMostOnce {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

/// QoS 2 requests are served as QoS 1 (see the crate docs).
pub(crate) fn cap_qos(q: QoS) -> QoS {
    min_qos(q, QoS::AtLeastOnce)
}
