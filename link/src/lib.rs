//! `edge-link`: the one MQTT link of the system, written once and used by every client we run (each agent's
//! session, the controller's connection to an external broker).
//!
//! Layout:
//! - [`options`]: [`LinkOptions`] and [`connect`]: the connect options (client id, keep alive
//!   [`edge_proto::timing::KEEP_ALIVE`], `TCP_NODELAY` on, connection timeout, packet size bounded by
//!   [`edge_proto::MAX_PAYLOAD`], inflight window, request queue, optional Last Will, clean session).
//! - [`reconnect`]: [`unreachable`] (does a [`rumqttc::ConnectionError`] say nothing answers at the broker's
//!   address?) and [`Reconnect`], the pacing between attempts: jittered back-off 1 s → 30 s
//!   ([`edge_proto::backoff`]), cut short by a bare TCP probe about once a second while the broker's port is
//!   plainly unreachable, and cancelled by a shutdown watch.
//!
//! rumqttc is re-exported ([`rumqttc`]) so users name the same version of its types.
//!
//! Why these choices (see also `DESIGN.md`, "Pitfalls"): rumqttc leaves Nagle on, which costs about 44 ms per
//! exchange on a connection that both publishes QoS 1 and receives; it has no back-off of its own (a client
//! that retries at once hammers a broker that is up but refusing it); and it loses subscriptions across
//! reconnects (resubscribe on every ConnAck: that part stays with the caller, who knows its topics).
//!
//! # Usage
//!
//! One task owns the event loop: it polls, resubscribes on every ConnAck, and on an error lets [`Reconnect`]
//! wait before the next poll (which reconnects). Publishing goes through the [`rumqttc::AsyncClient`]; never
//! block the loop that polls on a full request queue.
//!
//! ```no_run
//! use edge_link::rumqttc::{Event, Packet, QoS};
//! use edge_link::{LinkOptions, Reconnect, Waited};
//! use tokio::sync::watch;
//!
//! async fn serve(mut shutdown: watch::Receiver<bool>) {
//!     let options = LinkOptions::new("edge-controller", "broker.example", 1883).inflight(1000).capacity(4096);
//!     let (client, mut eventloop) = edge_link::connect(&options);
//!     let mut reconnect = Reconnect::new(&options);
//!     loop {
//!         let event = tokio::select! {
//!             e = eventloop.poll() => e,
//!             _ = edge_link::stopped(&mut shutdown) => break,
//!         };
//!         match event {
//!             Ok(Event::Incoming(Packet::ConnAck(_))) => {
//!                 reconnect.connected();
//!                 // rumqttc does not resubscribe by itself.
//!                 let _ = client.try_subscribe("edge/v1/nodes/+/heartbeat", QoS::AtLeastOnce);
//!             }
//!             Ok(Event::Incoming(Packet::Publish(p))) => { /* decode p.payload */ }
//!             Ok(_) => {}
//!             Err(e) => {
//!                 if reconnect.wait(&e, &mut shutdown).await == Waited::Shutdown {
//!                     break;
//!                 }
//!             }
//!         }
//!     }
//!     let _ = client.try_disconnect();
//! }
//! ```

pub mod options;
pub mod reconnect;

pub use options::{connect, LinkOptions};
pub use reconnect::{stopped, unreachable, Plan, Reconnect, Waited};
pub use rumqttc;
