//! Random protocol messages from the [`Rng`], for the round-trip property tests (`tests/roundtrip.rs`) and
//! for seeds: every variant of every enum, numbers biased to their extremes (0, 1, `MAX`), strings empty,
//! ASCII, multi-byte, with control characters.
//!
//! [`variant`] matches [`Message`] exhaustively, so a message kind added to the protocol fails to compile
//! here until [`message`] makes it too.

use edge_proto::join::{JoinRefusal, JoinReply, JoinRequest};
use edge_proto::message::{InstanceUsage, NodeUsage};
use edge_proto::{
    EngineProfile, EngineTarget, Event, EventKind, EventsAck, Heartbeat, Hello, InstanceSpec, InstanceState,
    InstanceStatus, LogLine, LogStream, Message, ModuleChunk, ModuleReply, ModuleRequest, NodeSpec, NodeStatus, Outage,
    Resources, RestartPolicy, VolumeSpec,
};

use crate::rng::Rng;

/// How many kinds of [`Message`] there are.
pub const VARIANTS: usize = 13;

/// The index of a message's kind (its postcard variant index).
pub fn variant(m: &Message) -> usize {
    match m {
        Message::Hello(_) => 0,
        Message::Heartbeat(_) => 1,
        Message::Spec(_) => 2,
        Message::Events(_) => 3,
        Message::Logs(_) => 4,
        Message::ModuleRequest(_) => 5,
        Message::ModuleReply(_) => 6,
        Message::Status(_) => 7,
        Message::EventsAck(_) => 8,
        Message::HelloRequest => 9,
        Message::JoinRequest(_) => 10,
        Message::JoinReply(_) => 11,
        Message::Usage(_) => 12,
    }
}

/// A message of kind `kind` (`0..VARIANTS`; larger wraps), its fields drawn from `rng`.
pub fn message(rng: &mut Rng, kind: usize) -> Message {
    let g = rng;
    match kind % VARIANTS {
        0 => Message::Hello(hello(g)),
        1 => Message::Heartbeat(Heartbeat {
            at_ms: u64_(g),
            applied_generation: u64_(g),
            instances: list(g, status),
            events_dropped: u64_(g),
            last_event_seq: u64_(g),
            oldest_unacked_seq: u64_(g),
            last_outage: g.bool().then(|| outage(g)),
            store_id: u64_(g),
        }),
        2 => Message::Spec(NodeSpec { issuer: u64_(g), generation: u64_(g), instances: list(g, instance) }),
        3 => Message::Events(list(g, event)),
        4 => Message::Logs(list(g, |g| LogLine {
            instance: string(g),
            stream: if g.bool() { LogStream::Stdout } else { LogStream::Stderr },
            at_ms: u64_(g),
            line: string(g),
        })),
        5 => Message::ModuleRequest(ModuleRequest {
            module: hash(g),
            artifact: g.bool().then(|| profile(g)),
            offset: u64_(g),
            max_len: u32_(g),
        }),
        6 => Message::ModuleReply(match g.below(3) {
            0 => ModuleReply::Chunk(chunk(g)),
            1 => ModuleReply::NotFound { module: hash(g) },
            _ => ModuleReply::Refused { module: hash(g), artifact: g.bool().then(|| profile(g)), reason: string(g) },
        }),
        7 => Message::Status(NodeStatus { online: g.bool() }),
        8 => Message::EventsAck(EventsAck { store_id: u64_(g), up_to: u64_(g) }),
        9 => Message::HelloRequest,
        10 => Message::JoinRequest(JoinRequest {
            token_id: array(g),
            token_secret: array(g),
            node: string(g),
            node_key: array(g),
        }),
        11 => Message::JoinReply(join_reply(g)),
        _ => Message::Usage(NodeUsage {
            at_ms: u64_(g),
            window_ms: u64_(g),
            instances: list(g, |g| InstanceUsage { id: string(g), cpu_millis: u32_(g), memory_bytes: u64_(g) }),
        }),
    }
}

pub fn hello(g: &mut Rng) -> Hello {
    Hello {
        agent_version: string(g),
        board: string(g),
        arch: string(g),
        engine: profile(g),
        capacity: resources(g),
        labels: list(g, |g| (string(g), string(g))),
        applied_generation: u64_(g),
        store_id: u64_(g),
        reserved: resources(g),
    }
}

pub fn join_reply(g: &mut Rng) -> JoinReply {
    if g.bool() {
        return JoinReply::Accepted { node: string(g), cluster_key: array(g), signature: bytes(g) };
    }
    JoinReply::Refused(match g.below(8) {
        0 => JoinRefusal::Used,
        1 => JoinRefusal::Expired,
        2 => JoinRefusal::Unknown,
        3 => JoinRefusal::WrongNode { allowed: string(g) },
        4 => JoinRefusal::InvalidName { reason: string(g) },
        5 => JoinRefusal::NameTaken,
        6 => JoinRefusal::Unavailable,
        _ => JoinRefusal::BadKey,
    })
}

pub fn instance(g: &mut Rng) -> InstanceSpec {
    InstanceSpec {
        id: string(g),
        namespace: string(g),
        workload: string(g),
        module: hash(g),
        module_size: u64_(g),
        args: list(g, string),
        env: list(g, |g| (string(g), string(g))),
        cpu_millis: u32_(g),
        memory_limit_bytes: u64_(g),
        restart: *g.pick(&[RestartPolicy::Always, RestartPolicy::OnFailure, RestartPolicy::Never]),
        cpu_limit_millis: u32_(g),
        timeout_ms: u64_(g),
        volumes: list(g, |g| VolumeSpec { name: string(g), size_bytes: u64_(g) }),
    }
}

pub fn chunk(g: &mut Rng) -> ModuleChunk {
    ModuleChunk {
        module: hash(g),
        artifact: g.bool().then(|| profile(g)),
        sha256: hash(g),
        offset: u64_(g),
        total: u64_(g),
        data: bytes(g),
    }
}

fn status(g: &mut Rng) -> InstanceStatus {
    const STATES: [InstanceState; 7] = [
        InstanceState::Pending,
        InstanceState::Starting,
        InstanceState::Running,
        InstanceState::Succeeded,
        InstanceState::Failed,
        InstanceState::CrashLoopBackOff,
        InstanceState::Unknown,
    ];
    InstanceStatus {
        id: string(g),
        state: *g.pick(&STATES),
        restarts: u32_(g),
        started_at_ms: g.bool().then(|| u64_(g)),
        exit_code: g.bool().then(|| i32_(g)),
        reason: g.bool().then(|| string(g)),
    }
}

fn event(g: &mut Rng) -> Event {
    let kind = match g.below(8) {
        0 => EventKind::Starting,
        1 => EventKind::Started { started_at_ms: u64_(g) },
        2 => EventKind::Exited { code: i32_(g) },
        3 => EventKind::Trapped { reason: string(g) },
        4 => EventKind::Failed { reason: string(g) },
        5 => EventKind::BackOff { delay_ms: u64_(g) },
        6 => EventKind::Stopped,
        _ => EventKind::Rejected { reason: string(g) },
    };
    Event { seq: u64_(g), at_ms: u64_(g), instance: string(g), restarts: u32_(g), kind }
}

fn outage(g: &mut Rng) -> Outage {
    Outage {
        started_ms: u64_(g),
        ended_ms: u64_(g),
        events_buffered: u64_(g),
        events_dropped: u64_(g),
        logs_buffered: u64_(g),
        logs_dropped: u64_(g),
    }
}

fn profile(g: &mut Rng) -> EngineProfile {
    EngineProfile { target: *g.pick(&EngineTarget::ALL), memory_reservation: u64_(g), memory_guard: u64_(g) }
}

fn resources(g: &mut Rng) -> Resources {
    Resources { cpu_millis: u32_(g), memory_bytes: u64_(g) }
}

fn list<T>(g: &mut Rng, mut item: impl FnMut(&mut Rng) -> T) -> Vec<T> {
    let n = [0, 1, 1, 2, 3, 5][g.below(6)];
    (0..n).map(|_| item(g)).collect()
}

/// Extremes half the time: they are where encodings change length and arithmetic overflows.
pub fn u64_(g: &mut Rng) -> u64 {
    match g.below(8) {
        0 => 0,
        1 => 1,
        2 => u64::MAX,
        3 => 1 << 63,
        4 => g.next_u64() & 0x7f,
        _ => g.next_u64() >> g.below(64),
    }
}

fn u32_(g: &mut Rng) -> u32 {
    match g.below(4) {
        0 => 0,
        1 => u32::MAX,
        _ => (g.next_u64() >> g.below(64)) as u32,
    }
}

fn i32_(g: &mut Rng) -> i32 {
    let random = g.next_u64() as i32;
    *g.pick(&[0, 1, -1, i32::MIN, i32::MAX, random])
}

fn hash(g: &mut Rng) -> [u8; 32] {
    array(g)
}

fn array<const N: usize>(g: &mut Rng) -> [u8; N] {
    let mut out = [0u8; N];
    for b in &mut out {
        *b = g.next_u64() as u8;
    }
    out
}

fn bytes(g: &mut Rng) -> Vec<u8> {
    let n = [0, 1, 16, 64, 300][g.below(5)];
    (0..n).map(|_| g.next_u64() as u8).collect()
}

/// A string of up to 12 characters from an alphabet with the awkward ones: quotes, a NUL, a newline, a
/// multi-byte letter, an emoji.
pub fn string(g: &mut Rng) -> String {
    const CHARS: [char; 14] = ['a', 'z', '0', '-', '/', '.', ' ', '"', '\0', '\n', 'é', '💥', '+', '#'];
    let n = [0, 1, 3, 12][g.below(4)];
    (0..n).map(|_| *g.pick(&CHARS)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_comes_out_as_asked() {
        let mut g = Rng::new(1);
        for kind in 0..VARIANTS {
            assert_eq!(variant(&message(&mut g, kind)), kind);
        }
    }
}
