//! Integration tests: a real broker bound on port 0, driven by real `rumqttc` 0.25 clients over loopback
//! (and raw sockets where a well-behaved client cannot say what is tested). Every wait is bounded by
//! [`common::WAIT`] and fails loudly.

mod common;
mod lifecycle;
mod limits;
mod local;
mod policy;
mod pubsub;
mod robustness;
