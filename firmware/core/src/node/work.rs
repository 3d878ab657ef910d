//! What the node does between waits: messages from the controller (specs, module chunks, acks, hello
//! requests), its instances (converge, start, exits, restarts after back-off), and what it sends up (hello,
//! heartbeats on change and every `heartbeat_ms`, events until acknowledged, logs, module requests, pings).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use edge_proto::auth::{message_bytes, ReportAuth};
use edge_proto::timing::{FETCH_STALL, KEEP_ALIVE, RESEND_AFTER, TICK};
use edge_proto::{
    Channel, EventKind, Heartbeat, InstanceSpec, InstanceState, InstanceStatus, LogLine, LogStream, Message,
    ModuleReply, ModuleRequest, NodeSpec,
};
use embedded_io_async::{Read, Write};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

use super::{Core, Fetch, Inst, CHUNK, MAX_INSTANCES};
use crate::guest::{End, Output, Step};
use crate::link::{LinkError, TX_BUF};
use crate::mqtt::{self, Incoming, QoS};
use crate::platform::{Clock, Sensors, Storage};
use crate::store::Source;
use crate::verify::{self, Decision};

/// Back-off before a restart: 1 s doubling to this, reset after a run of [`GOOD_RUN_MS`].
const MAX_BACKOFF_MS: u64 = 60_000;
const GOOD_RUN_MS: u64 = 10_000;
/// Bytes of log lines per `Logs` message (the TX buffer holds topic, envelope and tag too).
const LOG_BATCH: usize = TX_BUF - 512;

impl<C: Clock, S: Storage, R: RngCore + CryptoRng, X: Sensors> Core<'_, C, S, R, X> {
    pub(super) fn event(&mut self, instance: &str, restarts: u32, kind: EventKind) {
        let at = self.at_ms();
        self.outbox.push(at, instance, restarts, kind);
    }

    fn log(&mut self, instance: &str, line: String) {
        let line = LogLine { instance: instance.into(), stream: LogStream::Stdout, at_ms: self.at_ms(), line };
        if let Err(line) = self.logs.push_back(line) {
            let _ = self.logs.pop_front();
            self.logs_dropped += 1;
            let _ = self.logs.push_back(line);
        }
    }

    // ---- incoming ----------------------------------------------------------------------------------------

    pub(super) async fn incoming<T: Read + Write>(&mut self, conn: &mut T, len: usize) -> Result<(), LinkError> {
        // Decode into owned values first: the packet borrows the receive buffer.
        let (ack, message) = match mqtt::decode(self.link.packet(len)) {
            Ok(Incoming::Publish(p)) => {
                let ack = (p.qos == QoS::AtLeastOnce).then_some(p.pkid);
                let ours =
                    self.topics.parse(p.topic).filter(|(n, c)| *n == self.cfg.node && Channel::DOWNLINK.contains(c));
                let message = ours.and_then(|_| edge_proto::decode(p.payload).ok()).map(|e| (e.message, e.auth));
                (ack, message)
            }
            Ok(_) => return Ok(()),
            Err(_) => return Err(LinkError::Malformed),
        };
        if let Some(pkid) = ack {
            self.link.send(conn, |b| mqtt::puback(b, pkid)).await?;
            self.last_tx = self.clock.now_ms();
        }
        match message {
            Some((Message::Spec(spec), auth)) => self.on_spec(conn, spec, auth.as_deref()).await,
            Some((Message::ModuleReply(reply), _)) => {
                self.on_module_reply(reply).await;
                Ok(())
            }
            Some((Message::EventsAck(ack), _)) => {
                self.outbox.ack(&ack);
                Ok(())
            }
            Some((Message::HelloRequest, _)) => {
                let hello = self.hello();
                self.publish(conn, Channel::Hello, QoS::AtLeastOnce, Message::Hello(hello)).await
            }
            _ => Ok(()),
        }
    }

    async fn on_spec<T: Read + Write>(
        &mut self,
        conn: &mut T,
        spec: NodeSpec,
        auth: Option<&[u8]>,
    ) -> Result<(), LinkError> {
        let Some(id) = &self.id else { return Ok(()) };
        let applied = self.applied.as_ref().map(|(s, _)| (s.issuer, s.generation));
        match verify::spec(self.cfg.node, &id.cluster, &spec, auth, applied, MAX_INSTANCES) {
            Decision::Reject(r) => {
                (self.trace)(&format!("refused a spec: {r}"));
                self.event("", 0, EventKind::Rejected { reason: r.to_string() });
            }
            Decision::Current => {
                // The retained copy again, or a controller that (re)connected: someone listens, catch it up.
                let now = self.clock.now_ms();
                self.outbox.resend_if(now, 0, true);
                self.heartbeat(conn).await?;
            }
            Decision::Apply(signature) => {
                // Persist first (with the modules it still uses), then converge.
                let keep: Vec<Source<'_>> = self
                    .modules
                    .iter()
                    .filter(|m| spec.instances.iter().any(|i| i.module == m.sha256))
                    .map(|m| Source::Flash(*m))
                    .collect();
                match self.store.save_state(&spec, Some(&signature), &keep).await {
                    Ok(stored) => self.modules = stored,
                    Err(e) => {
                        (self.trace)(&format!("cannot persist the spec; not applying it: {e}"));
                        return Ok(());
                    }
                }
                (self.trace)(&format!("applying spec generation {}", spec.generation));
                let instances = spec.instances.clone();
                self.applied = Some((spec, signature));
                self.converge(instances).await;
                self.heartbeat(conn).await?;
            }
        }
        Ok(())
    }

    async fn on_module_reply(&mut self, reply: ModuleReply) {
        let Some(f) = &mut self.fetch else { return };
        let (done, failed) = match reply {
            ModuleReply::Chunk(c) => {
                // Only the WebAssembly bytes of the module the signed spec names, in order, within bounds.
                let fits = c.total == f.size && c.total <= edge_proto::mcu::MAX_MODULE;
                if c.module != f.sha
                    || c.artifact.is_some()
                    || c.sha256 != f.sha
                    || !fits
                    || c.offset != f.buf.len() as u64
                {
                    return;
                }
                if f.buf.len() + c.data.len() > f.size as usize || c.data.is_empty() {
                    (false, Some("module download refused: inconsistent chunk".to_string()))
                } else {
                    f.buf.extend_from_slice(&c.data);
                    f.asked_at = 0;
                    (f.buf.len() as u64 == f.size, None)
                }
            }
            ModuleReply::NotFound { module } if module == f.sha => {
                (false, Some("module not found on the controller".into()))
            }
            ModuleReply::Refused { module, reason, .. } if module == f.sha => (false, Some(reason)),
            _ => return,
        };
        if let Some(why) = failed {
            f.buf.clear();
            f.asked_at = self.clock.now_ms();
            let sha = f.sha;
            self.fail_waiting(sha, &why);
            return;
        }
        if !done {
            return;
        }
        let Some(f) = self.fetch.take() else { return };
        if <[u8; 32]>::from(Sha256::digest(&f.buf)) != f.sha {
            self.fail_waiting(f.sha, "module download failed its sha256 check; retrying");
            return;
        }
        let Some((spec, signature)) = self.applied.clone() else { return };
        let mut sources: Vec<Source<'_>> = self.modules.iter().map(|m| Source::Flash(*m)).collect();
        sources.push(Source::Ram(f.sha, &f.buf));
        match self.store.save_state(&spec, Some(&signature), &sources).await {
            Ok(stored) => self.modules = stored,
            Err(e) => {
                let why = format!("cannot store the module: {e}");
                self.fail_waiting(f.sha, &why);
                return;
            }
        }
        let waiting: Vec<usize> = (0..self.instances.len()).filter(|i| self.instances[*i].waiting).collect();
        for i in waiting {
            self.start(i).await;
        }
    }

    fn fail_waiting(&mut self, sha: edge_proto::Sha256, why: &str) {
        let mut failed = Vec::new();
        for inst in self.instances.iter_mut().filter(|i| i.waiting && i.spec.module == sha) {
            inst.reason = Some(why.into());
            failed.push((inst.spec.id.clone(), inst.restarts));
        }
        for (id, restarts) in failed {
            self.event(&id, restarts, EventKind::Failed { reason: why.into() });
        }
    }

    // ---- instances ---------------------------------------------------------------------------------------

    /// Stops what `desired` no longer holds, starts what is new; leaves the rest alone.
    pub(super) async fn converge(&mut self, desired: Vec<InstanceSpec>) {
        let gone: Vec<(String, u32)> = self
            .instances
            .iter()
            .filter(|i| !desired.iter().any(|d| d.id == i.spec.id))
            .map(|i| (i.spec.id.clone(), i.restarts))
            .collect();
        for (id, restarts) in gone {
            self.runner.stop(&id);
            self.instances.retain(|i| i.spec.id != id);
            self.event(&id, restarts, EventKind::Stopped);
        }
        for spec in desired {
            if self.instances.iter().any(|i| i.spec.id == spec.id) {
                continue;
            }
            self.instances.push(Inst {
                spec,
                state: InstanceState::Pending,
                restarts: 0,
                started_at_ms: None,
                exit_code: None,
                reason: None,
                restart_at: None,
                waiting: false,
                finished: false,
                began: 0,
            });
            self.start(self.instances.len() - 1).await;
        }
        if self.fetch.as_ref().is_some_and(|f| !self.instances.iter().any(|i| i.spec.module == f.sha)) {
            self.fetch = None;
        }
    }

    /// Starts instance `i` from its stored module, or waits for the module's download.
    async fn start(&mut self, i: usize) {
        let Some(inst) = self.instances.get_mut(i) else { return };
        inst.restart_at = None;
        let sha = inst.spec.module;
        let Some(stored) = self.modules.iter().find(|m| m.sha256 == sha).copied() else {
            inst.waiting = true;
            inst.state = InstanceState::Pending;
            inst.reason = Some("fetching module".into());
            if self.fetch.is_none() {
                let size = inst.spec.module_size;
                self.fetch = Some(Fetch { sha, size, buf: Vec::new(), asked_at: 0 });
            }
            return;
        };
        inst.waiting = false;
        let (id, restarts) = (inst.spec.id.clone(), inst.restarts);
        self.event(&id, restarts, EventKind::Starting);
        let allocatable = self.cfg.ram_bytes.saturating_sub(self.cfg.board.reserved(self.cfg.ram_bytes).memory_bytes);
        let limit = self.instances[i].spec.memory_limit_bytes.min(allocatable);
        let now = self.clock.now_ms();
        let started = match self.store.module(&stored).await {
            Ok(wasm) => self.runner.start(&id, &wasm, limit, now),
            Err(e) => Err(format!("cannot read the module from flash: {e}")),
        };
        let at = self.at_ms();
        match started {
            Ok(()) => {
                let inst = &mut self.instances[i];
                (inst.state, inst.started_at_ms, inst.reason, inst.began) =
                    (InstanceState::Running, Some(at), None, now);
                self.event(&id, restarts, EventKind::Started { started_at_ms: at });
            }
            Err(reason) => {
                self.event(&id, restarts, EventKind::Failed { reason: reason.clone() });
                self.ended(i, None, reason);
            }
        }
    }

    /// Instance `i` ended (`code` 0 when `run` returned, `None` for a trap or a failed start): restart after a
    /// back-off, or finished for good.
    fn ended(&mut self, i: usize, code: Option<i32>, reason: String) {
        let now = self.clock.now_ms();
        let inst = &mut self.instances[i];
        inst.exit_code = code;
        inst.reason = (code != Some(0)).then_some(reason);
        if inst.spec.restart.restarts_after(code) {
            if now.saturating_sub(inst.began) >= GOOD_RUN_MS {
                inst.restarts = 0;
            }
            let delay = (1000u64 << inst.restarts.min(6)).min(MAX_BACKOFF_MS);
            inst.restart_at = Some(now + delay);
            inst.state = InstanceState::CrashLoopBackOff;
            let (id, restarts) = (inst.spec.id.clone(), inst.restarts);
            self.event(&id, restarts, EventKind::BackOff { delay_ms: delay });
        } else {
            inst.finished = true;
            inst.state = if code == Some(0) { InstanceState::Succeeded } else { InstanceState::Failed };
        }
    }

    /// The next instant local work is due: a guest runnable or waking, a restart, the tick.
    pub(super) fn local_deadline(&self) -> u64 {
        let restarts = self.instances.iter().filter_map(|i| i.restart_at).min().unwrap_or(u64::MAX);
        let guests = self.runner.next_wake().unwrap_or(u64::MAX);
        restarts.min(guests).min(self.next_tick)
    }

    /// Runs what is due without the network: one guest slice, restarts, guest output into the log ring.
    pub(super) async fn local_work(&mut self) {
        let now = self.clock.now_ms();
        if let Step::Ended { id, end } = self.runner.step(now, &mut self.sensors) {
            if let Some(i) = self.instances.iter().position(|x| x.spec.id == id) {
                let restarts = self.instances[i].restarts;
                let (code, reason) = match end {
                    End::Returned => {
                        self.event(&id, restarts, EventKind::Exited { code: 0 });
                        (Some(0), String::new())
                    }
                    End::Trapped(why) => {
                        self.event(&id, restarts, EventKind::Trapped { reason: why.clone() });
                        (None, why)
                    }
                };
                self.ended(i, code, reason);
            }
        }
        let mut out: Vec<(String, Output)> = Vec::new();
        self.runner.drain(|id, o| out.push((id.into(), o)));
        for (id, o) in out {
            let line = match o {
                Output::Line(l) => l,
                // No topic of the node's tree is a guest's own yet: publishes travel with its logs, named by
                // topic within the instance's namespace.
                Output::Publish { topic, payload } => {
                    let ns = self.instances.iter().find(|i| i.spec.id == id).map_or("", |i| i.spec.namespace.as_str());
                    format!("[publish {ns}/{topic}] {}", String::from_utf8_lossy(&payload))
                }
            };
            // Echoed to the board's log too, as the agent echoes guest output: visible with no broker at all.
            (self.trace)(&format!("{id}: {line}"));
            self.log(&id, line);
        }
        let due: Vec<usize> =
            (0..self.instances.len()).filter(|i| self.instances[*i].restart_at.is_some_and(|t| t <= now)).collect();
        for i in due {
            self.instances[i].restarts = self.instances[i].restarts.saturating_add(1);
            self.start(i).await;
        }
        if now >= self.next_tick {
            self.next_tick = now + TICK.as_millis() as u64;
        }
    }

    // ---- uplink ------------------------------------------------------------------------------------------

    /// The next instant the connection needs something sent: keep-alive, a stalled download.
    pub(super) fn uplink_deadline(&self) -> u64 {
        let ping = self.last_tx + KEEP_ALIVE.as_millis() as u64;
        let fetch = self.fetch.as_ref().map_or(u64::MAX, |f| f.asked_at + FETCH_STALL.as_millis() as u64);
        ping.min(fetch)
    }

    /// Sends what is due: events, logs, a heartbeat if changed or stale, a module request, a ping.
    pub(super) async fn uplink<T: Read + Write>(&mut self, conn: &mut T) -> Result<(), LinkError> {
        let now = self.clock.now_ms();
        self.outbox.resend_if(now, RESEND_AFTER.as_millis() as u64, false);
        while let Some(batch) = self.outbox.next_batch(now) {
            self.publish(conn, Channel::Events, QoS::AtLeastOnce, Message::Events(batch)).await?;
        }
        while !self.logs.is_empty() {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(l) = self.logs.front() {
                if bytes + l.line.len() + l.instance.len() + 16 > LOG_BATCH && !batch.is_empty() {
                    break;
                }
                bytes += l.line.len() + l.instance.len() + 16;
                batch.extend(self.logs.pop_front());
            }
            self.publish(conn, Channel::Logs, QoS::AtMostOnce, Message::Logs(batch)).await?;
        }
        // Changes are looked for every TICK (as the agent does), a refresh sent every `heartbeat_ms`.
        let due = match &self.last_heartbeat {
            None => true,
            Some((at, _)) if now.saturating_sub(*at) >= self.cfg.heartbeat_ms => true,
            Some(_) if now.saturating_sub(self.heartbeat_checked) < TICK.as_millis() as u64 => false,
            Some((_, last)) => {
                self.heartbeat_checked = now;
                *last != Heartbeat { at_ms: 0, ..self.heartbeat_body() }
            }
        };
        if due {
            self.heartbeat(conn).await?;
        }
        let ask = self.fetch.as_ref().filter(|f| f.asked_at == 0 || now >= f.asked_at + FETCH_STALL.as_millis() as u64);
        if let Some(f) = ask {
            let request = ModuleRequest { module: f.sha, artifact: None, offset: f.buf.len() as u64, max_len: CHUNK };
            if let Some(f) = &mut self.fetch {
                f.asked_at = now.max(1);
            }
            self.publish(conn, Channel::ModuleRequest, QoS::AtLeastOnce, Message::ModuleRequest(request)).await?;
        }
        if now.saturating_sub(self.last_tx) >= KEEP_ALIVE.as_millis() as u64 {
            self.link.send(conn, mqtt::pingreq).await?;
            self.last_tx = now;
        }
        Ok(())
    }

    fn heartbeat_body(&self) -> Heartbeat {
        let instances = self
            .instances
            .iter()
            .map(|i| InstanceStatus {
                id: i.spec.id.clone(),
                state: i.state,
                restarts: i.restarts,
                started_at_ms: i.started_at_ms,
                exit_code: i.exit_code,
                reason: i.reason.clone(),
            })
            .collect();
        Heartbeat {
            at_ms: self.at_ms(),
            applied_generation: self.applied.as_ref().map_or(0, |(s, _)| s.generation),
            instances,
            events_dropped: self.outbox.dropped(),
            last_event_seq: self.outbox.last_seq(),
            oldest_unacked_seq: self.outbox.oldest_unacked(),
            last_outage: None,
            store_id: self.store_id,
        }
    }

    pub(super) async fn heartbeat<T: Read + Write>(&mut self, conn: &mut T) -> Result<(), LinkError> {
        let body = self.heartbeat_body();
        self.last_heartbeat = Some((self.clock.now_ms(), Heartbeat { at_ms: 0, ..body.clone() }));
        self.publish(conn, Channel::Heartbeat, QoS::AtMostOnce, Message::Heartbeat(body)).await
    }

    /// Tags (as the agent's `tagger`) and publishes `message` on this node's `channel`. A message too large for
    /// the send buffer is dropped, not the connection.
    pub(super) async fn publish<T: Read + Write>(
        &mut self,
        conn: &mut T,
        channel: Channel,
        qos: QoS,
        message: Message,
    ) -> Result<(), LinkError> {
        let Some(id) = &mut self.id else { return Ok(()) };
        let auth = edge_trust::Context::of_report(channel).map(|context| {
            let counter = id.counter;
            id.counter = id.counter.saturating_add(1);
            let tag = id.report.tag(context, &id.record.node, counter, &message_bytes(&message));
            ReportAuth { counter, tag: *tag.as_bytes() }.to_bytes()
        });
        let payload = edge_proto::encode_with_auth(&message, auth.as_ref().map(|a| a.as_slice()));
        let topic = self.topics.node(self.cfg.node, channel);
        let pkid = self.link.next_pkid();
        let p = mqtt::Publish { topic: &topic, payload: &payload, qos, retain: false, pkid };
        match self.link.send(conn, |b| mqtt::publish(b, &p)).await {
            Err(LinkError::TooLarge) => {
                (self.trace)(&format!(
                    "a {} message of {} bytes is too large to send; dropped",
                    channel.as_str(),
                    payload.len()
                ));
                Ok(())
            }
            other => {
                self.last_tx = self.clock.now_ms();
                other
            }
        }
    }
}
