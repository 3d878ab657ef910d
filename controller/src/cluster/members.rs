//! Cluster membership: join tokens, nodes joining with them, and nodes deleted (revoked).
//!
//! A token's secret is never stored, only its sha256 ([`TokenRecord`]) and the salted hash an external
//! Mosquitto's password file wants; a member's MQTT password is derived from its key and the cluster key
//! ([`MqttPassword`]), and only its sha256 is stored ([`MemberRecord`]). Every change is committed before the
//! [`Registry`](crate::registry::Registry) the broker reads is told, so the broker never admits someone the
//! store does not know.
//!
//! With `--mosquitto-dir`, every change here also rewrites the external Mosquitto's files
//! ([`crate::mosquitto`]) before the call returns (before a join's reply goes out).
//!
//! A join is idempotent for the same node and key with the same token (a reply lost on the way is asked for
//! again and answered again, without spending another use).

use edge_api::{TokenCreated, TokenRequest, TokenView};
use edge_proto::join::{self, JoinRefusal, JoinReply, JoinRequest};
use edge_proto::{Channel, Message};
use edge_trust::{Context, JoinToken, MqttPassword, PublicKey};

use super::{Cluster, ClusterError, Publish};
use crate::clock::{now_ms, rfc3339_ms};
use crate::model::{MemberRecord, TokenRecord};
use crate::registry::{hash_from_hex, sha256};
use crate::store::Change;

/// Default lifetime of a token.
pub const DEFAULT_TOKEN_TTL_MS: u64 = 24 * 3600 * 1000;
/// Longest lifetime a token may have (a year) and most uses (a big fleet's batch).
const MAX_TOKEN_TTL_MS: u64 = 366 * 24 * 3600 * 1000;
const MAX_TOKEN_USES: u32 = 100_000;
/// Tokens kept at most (expired ones included, until deleted).
const MAX_TOKENS: usize = 10_000;

impl Cluster {
    /// `edgectl token create`.
    pub fn create_token(&mut self, req: TokenRequest) -> Result<TokenCreated, ClusterError> {
        let ttl = req.ttl_ms.unwrap_or(DEFAULT_TOKEN_TTL_MS);
        if ttl == 0 || ttl > MAX_TOKEN_TTL_MS {
            return Err(ClusterError::Invalid(format!("token ttl must be between 1ms and 366d, not {ttl} ms")));
        }
        let uses = req.uses.unwrap_or(1);
        if uses == 0 || uses > MAX_TOKEN_USES {
            return Err(ClusterError::Invalid(format!(
                "token uses must be between 1 and {MAX_TOKEN_USES}, not {uses}"
            )));
        }
        if let Some(node) = &req.node {
            super::check_name("node", node)?;
        }
        super::nodes::check_labels(&req.labels)?;
        if self.tokens.len() >= MAX_TOKENS {
            return Err(ClusterError::Conflict(format!(
                "there are {MAX_TOKENS} tokens already; delete some (edgectl token list, edgectl token delete ID)"
            )));
        }
        let (token, _) = JoinToken::generate(self.cluster_key.fingerprint())
            .map_err(|e| ClusterError::Invalid(format!("cannot make a token: {e}")))?;
        let now = now_ms();
        let secret_sha256 = sha256(token.secret().as_bytes());
        let record = TokenRecord {
            id: token.id().to_string(),
            secret_sha256: hex::encode(secret_sha256),
            created_ms: now,
            expires_ms: now.saturating_add(ttl),
            uses,
            uses_left: uses,
            node: req.node,
            labels: req.labels,
            joined: Vec::new(),
            mosquitto_hash: Some(crate::mosquitto::hash_password(&hex::encode(token.secret().as_bytes()))),
        };
        self.store.commit(&[Change::PutToken(&record)])?;
        self.registry.set_token(&record.id, secret_sha256);
        let view = token_view(&record, now);
        self.tokens.insert(record.id.clone(), record);
        self.sync_mosquitto();
        Ok(TokenCreated {
            token: token.to_string(),
            view,
            cluster_fingerprint: self.cluster_key.fingerprint().to_string(),
        })
    }

    pub fn token_views(&self) -> Vec<TokenView> {
        let now = now_ms();
        self.tokens.values().map(|t| token_view(t, now)).collect()
    }

    /// `edgectl token delete`: a node that already joined with it stays a member.
    pub fn delete_token(&mut self, id: &str) -> Result<(), ClusterError> {
        if !self.tokens.contains_key(id) {
            return Err(ClusterError::NotFound(format!(
                "token {} not found (edgectl token list shows them)",
                crate::api::bounds::truncated(id)
            )));
        }
        self.store.commit(&[Change::DeleteToken(id.to_string())])?;
        self.registry.remove_token(id);
        self.tokens.remove(id);
        self.sync_mosquitto();
        Ok(())
    }

    /// A join request arrived on `{p}/join/{id}/request`; the answer goes to `{p}/join/{id}/reply`.
    pub fn on_join(&mut self, id: &str, payload: &[u8]) {
        let request = match edge_proto::decode(payload) {
            Ok(e) => match e.message {
                Message::JoinRequest(r) if join::hex(&r.token_id) == id => r,
                _ => return self.counters.rejected += 1,
            },
            Err(_) => return self.counters.rejected += 1,
        };
        let reply = match self.join(&request) {
            Ok(()) => {
                let body = join::accepted_body(&request.node, &request.node_key, &request.token_id);
                let signed = edge_trust::sign(&self.cluster_key, Context::JOIN, body);
                tracing::info!(node = %request.node, token = %id, "node joined");
                JoinReply::Accepted {
                    node: request.node.clone(),
                    cluster_key: self.cluster_key.public().to_bytes(),
                    signature: signed.signature().to_vec(),
                }
            }
            Err(refusal) => {
                tracing::warn!(node = %request.node, token = %id, reason = %refusal, "join refused");
                JoinReply::Refused(refusal)
            }
        };
        let _ = self.publish.send(Publish {
            topic: join::reply_topic(self.topics.prefix(), &request.token_id),
            payload: edge_proto::encode(&Message::JoinReply(reply)),
            retain: false,
        });
    }

    fn join(&mut self, r: &JoinRequest) -> Result<(), JoinRefusal> {
        let id = join::hex(&r.token_id);
        let token = self.tokens.get(&id).ok_or(JoinRefusal::Unknown)?;
        if token.secret_sha256 != hex::encode(sha256(&r.token_secret)) {
            return Err(JoinRefusal::Unknown);
        }
        edge_proto::validate_name(&r.node).map_err(|e| JoinRefusal::InvalidName { reason: e.to_string() })?;
        let node_key = PublicKey::from_bytes(&r.node_key).map_err(|_| JoinRefusal::BadKey)?;
        let derived =
            MqttPassword::for_controller(&self.cluster_key, &node_key, &r.node).map_err(|_| JoinRefusal::BadKey)?;
        let key = hex::encode(r.node_key);
        let password = hex::encode(sha256(derived.as_str().as_bytes()));
        if let Some(m) = self.members.get(&r.node) {
            if m.public_key != key {
                return Err(JoinRefusal::NameTaken);
            }
            if m.token == id {
                // The same node asking again (its reply was lost): answer again, spending nothing.
                let mut m = m.clone();
                m.password_sha256 = password;
                self.store.commit(&[Change::PutMember(&m)]).map_err(|_| JoinRefusal::Unavailable)?;
                self.admit_member(m);
                return Ok(());
            }
        }
        if now_ms() >= token.expires_ms {
            return Err(JoinRefusal::Expired);
        }
        if token.uses_left == 0 {
            return Err(JoinRefusal::Used);
        }
        if let Some(allowed) = token.node.as_ref().filter(|n| **n != r.node) {
            return Err(JoinRefusal::WrongNode { allowed: allowed.clone() });
        }
        let mut token = token.clone();
        token.uses_left -= 1;
        token.joined.push(r.node.clone());
        let member = MemberRecord {
            name: r.node.clone(),
            public_key: key,
            password_sha256: password,
            joined_ms: now_ms(),
            token: id.clone(),
            labels: token.labels.clone(),
        };
        self.store
            .commit(&[Change::PutToken(&token), Change::PutMember(&member)])
            .map_err(|_| JoinRefusal::Unavailable)?;
        // A node re-joining under a name deleted earlier gets the user labels of its token, not the old ones.
        if let Some(n) = self.nodes.get_mut(&r.node) {
            n.user_labels.extend(member.labels.clone());
            self.unsaved_nodes.insert(r.node.clone());
        }
        self.tokens.insert(id, token);
        self.admit_member(member);
        Ok(())
    }

    fn admit_member(&mut self, member: MemberRecord) {
        if let Some(hash) = hash_from_hex(&member.password_sha256) {
            self.registry.set_member(&member.name, hash);
        }
        self.deleted.remove(&member.name);
        if let Some(broker) = &self.broker {
            broker.reinstate(&member.name);
        }
        self.members.insert(member.name.clone(), member);
        self.sync_mosquitto();
    }

    /// Rewrites the external Mosquitto's password and ACL files from the tokens and members (and has it
    /// reload), where this controller keeps them; nothing otherwise. Called after every change of either.
    /// A failure is logged: the cluster's change stands, and the next change or restart writes the files again.
    pub(crate) fn sync_mosquitto(&mut self) {
        if let Err(e) = self.write_mosquitto() {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "cannot update Mosquitto's files");
        }
    }

    /// Writes the Mosquitto files now (at start, where a failure to write them fails the start).
    pub fn write_mosquitto(&mut self) -> Result<(), crate::mosquitto::MosquittoError> {
        match &mut self.mosquitto {
            Some(keeper) => keeper.sync(&self.cluster_key, &self.tokens, &self.members),
            None => Ok(()),
        }
    }

    /// Whether messages from `node` are accepted: a member, or — without identities enforced — any node not
    /// deleted since this controller started.
    pub(crate) fn accepts_from(&self, node: &str) -> bool {
        self.members.contains_key(node) || (self.open && !self.deleted.contains(node))
    }

    /// `edgectl delete node`: its credentials stop working at once, its connection is closed, its
    /// reschedulable instances move per their node-loss policy, and its records are removed.
    pub fn delete_node(&mut self, name: &str, force: bool) -> Result<(), ClusterError> {
        let known = self.nodes.contains_key(name);
        if !known && !self.members.contains_key(name) {
            return Err(super::nodes::node_not_found(name));
        }
        if self.is_ready(name) && !force {
            return Err(ClusterError::Conflict(format!(
                "node {name} is Ready: drain it first (edgectl drain {name}) or delete it anyway with --force"
            )));
        }
        // Revoked first: from here on the node can neither connect nor be believed.
        self.registry.remove_member(name);
        self.deleted.insert(name.to_string());
        if let Some(broker) = &self.broker {
            broker.revoke(name);
        }
        if known {
            self.reconcile_draining(&std::collections::HashSet::from([name.to_string()]))?;
        }
        self.store.commit(&[Change::DeleteNode(name.to_string()), Change::DeleteMember(name.to_string())])?;
        self.nodes.remove(name);
        self.members.remove(name);
        // Mosquitto disconnects it on the reload that follows (its user is gone from the password file).
        self.sync_mosquitto();
        self.live.remove(name);
        self.reports.forget(name);
        self.last_specs.remove(name);
        self.unsaved_nodes.remove(name);
        // Its retained spec goes too: nobody should find instances addressed to a node that is gone.
        let _ = self.publish.send(Publish {
            topic: self.topics.node(name, Channel::Spec),
            payload: Vec::new(),
            retain: true,
        });
        self.sched = None;
        self.dirty = true;
        tracing::info!(node = %name, "node deleted and revoked");
        Ok(())
    }

    pub(crate) fn joined_ms(&self, node: &str) -> Option<u64> {
        self.members.get(node).map(|m| m.joined_ms)
    }
}

fn token_view(t: &TokenRecord, now: u64) -> TokenView {
    TokenView {
        id: t.id.clone(),
        created: rfc3339_ms(t.created_ms),
        expires: rfc3339_ms(t.expires_ms),
        expired: now >= t.expires_ms,
        uses_left: t.uses_left,
        uses: t.uses,
        node: t.node.clone(),
        labels: t.labels.clone(),
        joined: t.joined.clone(),
    }
}
