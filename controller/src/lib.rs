//! The edge controller: the brain of the cluster.
//!
//! A deploy flows: HTTP API ([`api`]) → the cluster's [`owner`] → [`cluster::Cluster`] → [`store`] (redb, durable
//! before the reply) →
//! [`reconcile`] + [`scheduler`] place replicas on nodes → each changed node spec is published retained over
//! MQTT ([`mqtt`]) → agents run it and report hello, heartbeats, events and logs back into the cluster.
//!
//! Layout:
//! - [`access`]: API credentials, roles and the rule of each route (pure).
//! - [`server`]: configuration, start and shutdown of a whole controller.
//! - [`broker`]: the embedded `edge-broker` (the zero-setup default), enforcing [`registry`]'s policy.
//! - [`mqtt`]: the MQTT shell (connection, subscriptions, publishing).
//! - [`owner`]: the one thread that owns the cluster state; the shells call in through its handle.
//! - [`cluster`]: all state and every operation on it, by concern (see its module doc).
//! - [`scheduler`], [`reconcile`]: pure decisions, no I/O.
//! - [`spec_size`]: how large a node's spec may grow on the wire (one MQTT message), and one instance's share.
//! - [`store`], [`model`]: the redb state store and the records in it.
//! - [`validate`]: WebAssembly module validation at upload.
//! - [`registry`], [`broker`]: who may use the embedded broker, and the broker itself.
//! - [`mosquitto`]: the same policy as files for an external Mosquitto 2.x (`--mosquitto-dir`), kept current.
//! - [`artifacts`]: modules precompiled per engine profile, built off the owner.
//! - [`logbook`]: recent log lines per workload.
//! - [`api`]: the HTTP/JSON API: admission, views, routes (its JSON types are the `edge-api` crate).

pub mod access;
pub mod api;
pub mod artifacts;
pub mod broker;
pub mod clock;
pub mod cluster;
pub mod logbook;
pub mod model;
pub mod mosquitto;
pub mod mqtt;
pub mod owner;
pub mod reconcile;
pub mod registry;
pub mod scheduler;
pub mod server;
pub mod spec_size;
pub mod store;
pub mod validate;

pub use server::{parse_broker_url, start, BrokerMode, ControllerConfig, ControllerError, Running};
