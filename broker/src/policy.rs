//! Authentication and authorisation: the [`Policy`] the embedding program implements.
//!
//! The broker asks the policy once per CONNECT (who is this?) and then once per PUBLISH topic and per
//! SUBSCRIBE filter (may this identity do that?). The answers are the policy's; the broker only enforces them:
//!
//! - a refused CONNECT gets a CONNACK with the matching MQTT 3.1.1 return code, then the socket is closed;
//! - a PUBLISH the identity may not make is dropped and counted (`publish_refused`); QoS 1 is still
//!   acknowledged, because MQTT 3.1.1 has no negative PUBACK and a client that never gets its ack would resend
//!   the same refused message forever;
//! - a SUBSCRIBE filter the identity may not use gets the failure code 0x80 in the SUBACK, the other filters
//!   of the same packet are unaffected;
//! - the Last Will of a CONNECT must be a topic the identity may publish to, or the CONNECT is refused with
//!   `NotAuthorized` (a will is a publish made later on the client's behalf).
//!
//! Policy methods are called from connection tasks, never with a broker lock held, so they may take their own
//! locks; they should still be quick (they run once per packet).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use rumqttc::mqttbytes::v4::ConnectReturnCode;

/// Who a connection is, as the policy decided at CONNECT. Compared by value: the default takeover rule
/// ([`crate::Takeover::SameIdentity`]) lets a new connection replace a live one with the same client id only if
/// both identities are equal.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Identity(Option<Arc<str>>);

impl Identity {
    /// No authenticated principal. Two anonymous identities are equal, so with [`AllowAll`] the plain MQTT rule
    /// (a new connection takes over the old one) applies.
    pub fn anonymous() -> Identity {
        Identity(None)
    }

    /// An authenticated principal, e.g. `node/pi-7` or `controller`.
    pub fn principal(name: impl Into<Arc<str>>) -> Identity {
        Identity(Some(name.into()))
    }

    /// The principal's name; `None` for anonymous.
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The principal's name, shared (a retained message's owner keeps it without copying).
    pub(crate) fn shared_name(&self) -> Option<&Arc<str>> {
        self.0.as_ref()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(name) => write!(f, "Identity({name})"),
            None => f.write_str("Identity(anonymous)"),
        }
    }
}

/// What a CONNECT presented. The password is shown as bytes (MQTT 3.1.1 allows binary passwords, although the
/// codec used here only accepts UTF-8 ones); an empty username or password is reported as absent.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    pub peer: SocketAddr,
}

impl fmt::Debug for Credentials<'_> {
    // Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.map(|_| "<redacted>"))
            .field("peer", &self.peer)
            .finish()
    }
}

/// Why a CONNECT is refused; each maps to its MQTT 3.1.1 CONNACK return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 0x02 identifier rejected: unacceptable client id (also used when a live session with this id may not be
    /// taken over by a local link's id, see [`crate::Takeover`]).
    BadClientId,
    /// 0x03 server unavailable (the broker is at its session bound or shutting down).
    ServiceUnavailable,
    /// 0x04 bad user name or password.
    BadCredentials,
    /// 0x05 not authorised (also: revoked client ids, a forbidden Last Will topic, a takeover refused).
    NotAuthorized,
}

impl Refusal {
    pub(crate) fn code(self) -> ConnectReturnCode {
        match self {
            Refusal::BadClientId => ConnectReturnCode::BadClientId,
            Refusal::ServiceUnavailable => ConnectReturnCode::ServiceUnavailable,
            Refusal::BadCredentials => ConnectReturnCode::BadUserNamePassword,
            Refusal::NotAuthorized => ConnectReturnCode::NotAuthorized,
        }
    }
}

/// Authentication and authorisation decisions, implemented by the embedding program.
///
/// A filter check sees the filter as written (`edge/v1/nodes/n1/#`); to confine an identity to a subtree,
/// check that every topic the filter can match lies inside it, e.g. with `rumqttc::mqttbytes::matches(filter,
/// allowed)`, which also answers "is filter A covered by filter B".
pub trait Policy: Send + Sync + 'static {
    /// Authenticates a CONNECT. The client id is the one the session will have (an id the broker assigned if
    /// the client sent an empty one with a clean session).
    fn connect(&self, credentials: &Credentials<'_>) -> Result<Identity, Refusal>;

    /// Whether `identity` may publish to `topic` (a valid topic name, no wildcards). Also asked for the Last
    /// Will topic at CONNECT.
    fn may_publish(&self, identity: &Identity, topic: &str) -> bool;

    /// Whether `identity` may subscribe with `filter` (a valid filter).
    fn may_subscribe(&self, identity: &Identity, filter: &str) -> bool;
}

/// Accepts every connection as anonymous and allows everything: for tests and a standalone broker.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Policy for AllowAll {
    fn connect(&self, _: &Credentials<'_>) -> Result<Identity, Refusal> {
        Ok(Identity::anonymous())
    }

    fn may_publish(&self, _: &Identity, _: &str) -> bool {
        true
    }

    fn may_subscribe(&self, _: &Identity, _: &str) -> bool {
        true
    }
}

impl<P: Policy + ?Sized> Policy for Arc<P> {
    fn connect(&self, credentials: &Credentials<'_>) -> Result<Identity, Refusal> {
        (**self).connect(credentials)
    }

    fn may_publish(&self, identity: &Identity, topic: &str) -> bool {
        (**self).may_publish(identity, topic)
    }

    fn may_subscribe(&self, identity: &Identity, filter: &str) -> bool {
        (**self).may_subscribe(identity, filter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_compare_by_principal() {
        assert_eq!(Identity::anonymous(), Identity::anonymous());
        assert_eq!(Identity::principal("a"), Identity::principal(String::from("a")));
        assert_ne!(Identity::principal("a"), Identity::principal("b"));
        assert_ne!(Identity::principal("a"), Identity::anonymous());
        assert_eq!(Identity::principal("n").name(), Some("n"));
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let c = Credentials {
            client_id: "c",
            username: Some("u"),
            password: Some(b"hunter2"),
            peer: "127.0.0.1:1".parse().unwrap(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn refusal_codes() {
        assert_eq!(Refusal::BadCredentials.code(), ConnectReturnCode::BadUserNamePassword);
        assert_eq!(Refusal::NotAuthorized.code(), ConnectReturnCode::NotAuthorized);
    }
}
