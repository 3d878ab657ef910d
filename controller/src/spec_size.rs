//! How large a node's spec may grow on the wire, and how large one instance of a workload makes it. Pure.
//!
//! A node's whole desired state is one retained MQTT message (`{prefix}/nodes/{node}/spec`). If it were larger
//! than the agent accepts, the agent could never receive it: its MQTT client drops the connection on the
//! oversize packet, reconnects, is handed the same retained message again, and the node stays NotReady for as
//! long as the spec stands. So the size of a spec is a resource like memory: the scheduler books
//! [`instance_bytes`] per instance against [`NODE_SPEC_BUDGET`] per node (`scheduler::Demand`), and
//! `Cluster::deploy` refuses a workload one instance of which would exceed [`INSTANCE_BUDGET`].
//!
//! **The limits this derives from.** Agents accept payloads of up to [`edge_proto::MAX_PAYLOAD`] (512 KiB;
//! `edge_proto::decode` refuses more) inside MQTT packets of up to `edge_link::MAX_PACKET` (the payload plus
//! 4 KiB of framing for the topic and packet id); the embedded broker accepts packets of the payload plus
//! 64 KiB (`crate::broker`). An external broker must allow at least `MAX_PACKET` (Mosquitto's
//! `message_size_limit`, EMQX's `max_packet_size`).

use crate::model::WorkloadSpec;

/// Room kept out of [`edge_proto::MAX_PAYLOAD`] for what a spec message holds besides its instances: the
/// envelope's version, the message tag, issuer, generation, the instance count and the cluster's signature (about
/// 100 bytes in all), with ample margin for fields a later protocol version adds.
pub const ENVELOPE_ROOM: usize = 4 * 1024;

/// Bytes the instances of one node's spec may take on the wire: everything a spec message may hold but the
/// envelope.
pub const NODE_SPEC_BUDGET: usize = edge_proto::MAX_PAYLOAD - ENVELOPE_ROOM;

/// Bytes one instance may take in its node's spec: an eighth of [`NODE_SPEC_BUDGET`] (63.5 KiB), so that a node
/// always has room for at least eight instances of the largest workload, and a single deploy can never make a
/// spec that does not fit. Typical instances take a few hundred bytes, so a node's spec budget holds
/// thousands of them. A deploy at every admission bound (`api::bounds`: 32 KiB of env, 16 KiB of args, 16
/// volumes, 63-character names) takes about 54 KiB, so this budget refuses nothing admission accepts; it
/// is the guard that keeps holding if those bounds are ever raised.
pub const INSTANCE_BUDGET: usize = NODE_SPEC_BUDGET / 8;

// Checked when compiled: eight of the largest instances and the envelope fit one message.
const _: () = assert!(INSTANCE_BUDGET * 8 + ENVELOPE_ROOM <= edge_proto::MAX_PAYLOAD);

/// Characters an instance id adds to its workload's name: `-` and five random ones (`cluster::unique_ids`).
const ID_SUFFIX: usize = 6;
/// Most bytes of a postcard varint of a u32 and of a u64.
const VARINT_U32: usize = 5;
const VARINT_U64: usize = 10;

/// The bytes of a postcard varint of `n`.
fn varint(n: usize) -> usize {
    let bits = usize::BITS - n.leading_zeros();
    (bits.max(1) as usize).div_ceil(7)
}

/// A postcard string: its length as a varint, then its bytes.
fn string(len: usize) -> usize {
    varint(len) + len
}

/// An upper bound (tight to a few bytes) on the encoded size of one instance of workload `namespace/name`
/// with `spec` in a node's spec (an `edge_proto::InstanceSpec`, as `reconcile::node_specs` builds it). Every
/// instance of a workload has the same size: ids differ only in their random suffix. Linear in the number of
/// env entries, args and volumes; allocates nothing.
pub fn instance_bytes(namespace: &str, name: &str, spec: &WorkloadSpec) -> usize {
    let fixed = string(name.len() + ID_SUFFIX)
        + string(namespace.len())
        + string(name.len())
        + 32 // module sha256, a fixed-size array
        + VARINT_U64 // module_size
        + VARINT_U32 // cpu_millis
        + VARINT_U64 // memory_limit_bytes
        + VARINT_U32 // restart policy tag
        + VARINT_U32 // cpu_limit_millis
        + VARINT_U64; // timeout_ms
    let args = varint(spec.args.len()) + spec.args.iter().map(|a| string(a.len())).sum::<usize>();
    let env = varint(spec.env.len()) + spec.env.iter().map(|(k, v)| string(k.len()) + string(v.len())).sum::<usize>();
    let volumes =
        varint(spec.volumes.len()) + spec.volumes.iter().map(|v| string(v.name.len()) + VARINT_U64).sum::<usize>();
    fixed + args + env + volumes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InstanceRecord, WorkloadRecord};
    use edge_proto::{Message, NodeSpec, VolumeSpec};

    /// The exact bytes `instances` instances of `spec` add to an encoded node spec.
    fn encoded(namespace: &str, name: &str, spec: &WorkloadSpec, instances: usize) -> usize {
        let mut w = WorkloadRecord {
            namespace: namespace.into(),
            name: name.into(),
            spec: spec.clone(),
            revision: 1,
            instances: Vec::new(),
            created_ms: 0,
            history: Vec::new(),
        };
        for i in 0..instances {
            let id = format!("{name}-{i:05}");
            w.instances.push(InstanceRecord { id, revision: 1, node: Some("n".into()), reason: None });
        }
        let mut specs = crate::reconcile::node_specs([&w], |_| Some(u64::MAX));
        let list = specs.remove("n").unwrap_or_default();
        let size = |instances| {
            let spec = NodeSpec { issuer: u64::MAX, generation: u64::MAX, instances };
            edge_proto::encode_with_auth(&Message::Spec(spec), Some(&[0xff; 64])).len()
        };
        size(list) - size(Vec::new())
    }

    fn spec() -> WorkloadSpec {
        WorkloadSpec {
            module: "ab".repeat(32),
            replicas: 1,
            cpu_millis: u32::MAX,
            memory_bytes: u64::MAX,
            cpu_limit_millis: u32::MAX,
            timeout_ms: u64::MAX,
            ..Default::default()
        }
    }

    #[test]
    fn varints_are_counted_as_postcard_writes_them() {
        for (n, want) in [(0, 1), (127, 1), (128, 2), (16_383, 2), (16_384, 3), (usize::MAX, 10)] {
            assert_eq!(varint(n), want, "{n}");
        }
    }

    #[test]
    fn the_bound_holds_and_is_tight_for_small_and_large_instances() {
        let mut large = spec();
        large.env = (0..200).map(|i| (format!("VAR_{i}"), "v".repeat(i * 50))).collect();
        large.args = (0..100).map(|i| "a".repeat(i * 3)).collect();
        large.volumes = (0..16).map(|i| VolumeSpec { name: format!("vol-{i}"), size_bytes: u64::MAX }).collect();
        for (ns, name, s) in [("default", "t", spec()), (&"n".repeat(63) as &str, &"w".repeat(63) as &str, large)] {
            let bound = instance_bytes(ns, name, &s);
            let one = encoded(ns, name, &s, 1);
            assert!(bound >= one && bound <= one + 32, "bound {bound}, encoded {one}");
            // Instances add up: n of them take n times one (the count's varint aside).
            let ten = encoded(ns, name, &s, 10);
            assert!(bound * 10 >= ten, "bound {bound} × 10 < {ten}");
        }
    }

    #[test]
    fn budgets_fit_inside_one_message() {
        // A spec filled to its budget, plus the envelope at its largest, decodes on the agent's side.
        let mut s = spec();
        s.env = vec![("FILL".into(), "x".repeat(INSTANCE_BUDGET - instance_bytes("default", "fill", &s) - 16))];
        let per = instance_bytes("default", "fill", &s);
        assert!(per <= INSTANCE_BUDGET);
        let n = NODE_SPEC_BUDGET / per;
        let mut w = WorkloadRecord {
            namespace: "default".into(),
            name: "fill".into(),
            spec: s,
            revision: 1,
            instances: Vec::new(),
            created_ms: 0,
            history: Vec::new(),
        };
        for i in 0..n {
            w.instances.push(InstanceRecord {
                id: format!("fill-{i:05}"),
                revision: 1,
                node: Some("n".into()),
                reason: None,
            });
        }
        let instances = crate::reconcile::node_specs([&w], |_| Some(u64::MAX)).remove("n").unwrap();
        let spec = NodeSpec { issuer: u64::MAX, generation: u64::MAX, instances };
        let bytes = edge_proto::encode_with_auth(&Message::Spec(spec), Some(&[0xff; 64]));
        assert!(bytes.len() <= edge_proto::MAX_PAYLOAD, "{} bytes", bytes.len());
        assert!(edge_proto::decode(&bytes).is_ok());
    }
}
