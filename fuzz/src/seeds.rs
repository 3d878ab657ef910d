//! The committed inputs, generated here from real messages and documents so they follow the code: seeds
//! (`fuzz/corpus/TARGET/NAME`, valid inputs the fuzzer mutates) and hostile inputs (`fuzz/hostile/NAME`,
//! replayed through every target by `tests/corpus.rs`). `edge-fuzz seeds` writes them; `tests/corpus.rs` fails
//! when a committed file differs from what is generated (a protocol change: run `edge-fuzz seeds` again).
//! Hand-made files may be added beside them; nothing here removes a file.

use std::io;
use std::path::Path;

use edge_proto::auth::{artifact_document, spec_document, ReportAuth, TAG_LEN};
use edge_proto::join::{JoinRefusal, JoinReply, JoinRequest};
use edge_proto::{encode, encode_for, encode_with_auth, v3, Channel, Message, ModuleReply, NodeSpec, Topics};
use edge_trust::{sign, Context};

use crate::gen;
use crate::mutate::leb128;
use crate::rng::Rng;
use crate::targets::agent::NODE;
use crate::targets::trust::harness_key;

/// One file to write: its directory under `fuzz/` (`corpus/TARGET` or `hostile`), name and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub dir: String,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Every seed and hostile input.
pub fn all() -> Vec<File> {
    let mut out = Vec::new();
    let mut seed = |target: &str, name: &str, bytes: Vec<u8>| {
        out.push(File { dir: format!("corpus/{target}"), name: name.to_string(), bytes });
    };
    for (name, m) in samples() {
        seed("envelope", &format!("{name}-v4"), encode(&m));
        seed("message", &name, postcard::to_allocvec(&m).unwrap());
        if v3_carries(&m) {
            seed("envelope", &format!("{name}-v3"), encode_for(v3::VERSION, &m));
            seed("v3", &name, encode_for(v3::VERSION, &m));
        }
        if uplink(&m) {
            let tag = ReportAuth { counter: 41, tag: [0x5a; TAG_LEN] }.to_bytes();
            seed("envelope", &format!("{name}-v4-tagged"), encode_with_auth(&m, Some(&tag)));
        }
    }
    let spec = sample_spec();
    let signed = signed_spec(NODE, &spec);
    seed("envelope", "spec-v4-signed", signed.clone());
    seed("verify", "spec-signed", signed);
    seed("verify", "spec-for-another-node", signed_spec("pi-2", &spec));
    seed("verify", "spec-unsigned", encode(&Message::Spec(spec.clone())));
    seed("verify", "artifact-chunk-signed", signed_chunk());
    seed("signed", "spec", sign(harness_key(), Context::SPEC, spec_document(NODE, &spec)).encode());
    seed("signed", "empty-body", sign(harness_key(), Context::SPEC, Vec::new()).encode());
    seed("signed", "report-auth", ReportAuth { counter: u64::MAX, tag: [1; TAG_LEN] }.to_bytes().to_vec());
    for (name, m) in join_samples() {
        seed("join", name, m);
    }
    for (name, text) in text_seeds() {
        seed(name.0, name.1, text.into_bytes());
    }
    seed("replay", "in-order", vec![0x41, 0x41, 0x41, 0x40, 0x42]);
    seed("replay", "late-and-duplicate", [&[0x80][..], &1000u64.to_le_bytes(), &[0x3f, 0x3f, 0x00, 0x01]].concat());
    seed("replay", "resumed", [&[0xfe][..], &500u64.to_le_bytes(), &[0x40, 0x41, 0x00]].concat());
    out.extend(hostile());
    out
}

/// Writes every file under `root` (the fuzz crate's directory); returns how many.
pub fn write(root: &Path) -> io::Result<usize> {
    let files = all();
    for f in &files {
        let dir = root.join(&f.dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(&f.name), &f.bytes)?;
    }
    Ok(files.len())
}

/// One real-looking message of every kind, as an agent and a controller exchange them.
fn samples() -> Vec<(String, Message)> {
    let mut g = Rng::new(2026);
    let mut out = vec![("spec".to_string(), Message::Spec(sample_spec()))];
    for kind in 0..gen::VARIANTS {
        let m = gen::message(&mut g, kind);
        out.push((format!("{}-{kind}", kind_name(&m)), m));
    }
    out
}

fn kind_name(m: &Message) -> &'static str {
    [
        "hello",
        "heartbeat",
        "spec",
        "events",
        "logs",
        "module-request",
        "module-reply",
        "status",
        "events-ack",
        "hello-request",
        "join-request",
        "join-reply",
        "usage",
    ][gen::variant(m)]
}

/// Whether protocol 3 has the message (joining and usage came later).
fn v3_carries(m: &Message) -> bool {
    !matches!(m, Message::JoinRequest(_) | Message::JoinReply(_) | Message::Usage(_))
}

/// Whether a node sends it (and tags it when joined).
fn uplink(m: &Message) -> bool {
    matches!(
        m,
        Message::Hello(_)
            | Message::Heartbeat(_)
            | Message::Events(_)
            | Message::Logs(_)
            | Message::ModuleRequest(_)
            | Message::Usage(_)
    )
}

fn sample_spec() -> NodeSpec {
    let mut instance = gen::instance(&mut Rng::new(4));
    instance.id = "tick-0-1a2b3c4d".into();
    instance.namespace = "default".into();
    instance.workload = "tick".into();
    NodeSpec { issuer: 0x5eed, generation: 3, instances: vec![instance] }
}

/// A spec envelope signed by the harness's cluster key for `node`.
fn signed_spec(node: &str, spec: &NodeSpec) -> Vec<u8> {
    let signature = *sign(harness_key(), Context::SPEC, spec_document(node, spec)).signature();
    encode_with_auth(&Message::Spec(spec.clone()), Some(&signature))
}

fn signed_chunk() -> Vec<u8> {
    let mut chunk = gen::chunk(&mut Rng::new(5));
    chunk.artifact = Some(edge_proto::EngineProfile {
        target: edge_proto::EngineTarget::Aarch64,
        memory_reservation: 1 << 32,
        memory_guard: 1 << 16,
    });
    chunk.total = chunk.data.len() as u64;
    let profile = chunk.artifact.unwrap();
    let body = artifact_document(&chunk.module, &profile, &chunk.sha256, chunk.total);
    let signature = *sign(harness_key(), Context::ARTIFACT, body).signature();
    encode_with_auth(&Message::ModuleReply(ModuleReply::Chunk(chunk)), Some(&signature))
}

fn join_samples() -> Vec<(&'static str, Vec<u8>)> {
    let request = JoinRequest { token_id: [1; 8], token_secret: [2; 16], node: "pi-1".into(), node_key: [3; 32] };
    let accepted = JoinReply::Accepted { node: "pi-1".into(), cluster_key: [4; 32], signature: vec![5; 64] };
    let refused = JoinReply::Refused(JoinRefusal::WrongNode { allowed: "pi-2".into() });
    vec![
        ("request", postcard::to_allocvec(&request).unwrap()),
        ("accepted", postcard::to_allocvec(&accepted).unwrap()),
        ("refused-wrong-node", postcard::to_allocvec(&refused).unwrap()),
        ("refused-used", postcard::to_allocvec(&JoinReply::Refused(JoinRefusal::Used)).unwrap()),
    ]
}

/// A join token for the harness's cluster key, as `Display` prints one.
fn token() -> String {
    let fp = harness_key().fingerprint().to_string();
    let hex = fp.strip_prefix("sha256:").unwrap_or(&fp);
    format!("EJ1{hex}::0001020304050607.08090a0b0c0d0e0f1011121314151617")
}

fn text_seeds() -> Vec<((&'static str, &'static str), String)> {
    let topics = Topics::default();
    let mut out = Vec::new();
    let names = ["status", "hello", "heartbeat", "spec", "events", "logs", "module-req", "module-chunk", "ack"];
    for (c, name) in Channel::ALL.into_iter().zip(names) {
        out.push((("topic", name), format!("edge/v1\n{}", topics.node(NODE, c))));
    }
    let id = [0xab, 0, 1, 2, 3, 4, 5, 0xff];
    out.push((("topic", "join-request"), format!("edge/v1\n{}", edge_proto::join::request_topic("edge/v1", &id))));
    out.push((("topic", "join-reply"), format!("lab/\n{}", edge_proto::join::reply_topic("lab", &id))));
    let quantities = [
        ("cpu-millis", "250m"),
        ("cpu-fraction", "0.5"),
        ("cpu-cores", "2"),
        ("memory-binary", "64Mi"),
        ("memory-fraction", "1.5Gi"),
        ("memory-decimal", "500M"),
        ("memory-bytes", "1048576"),
        ("duration-ms", "500ms"),
        ("duration-days", "7d"),
        ("duration-fraction", "1.5m"),
        ("volume", "data:64Mi"),
        ("broker", "mqtt://192.168.1.10:1883"),
        ("broker-v6", "mqtt://[::1]:1883"),
        ("name", "pi-1"),
        ("instant", "2025-06-01T12:00:00+05:00"),
    ];
    for (name, q) in quantities {
        out.push((("quantity", name), q.to_string()));
    }
    let t = token();
    out.push((("token", "token"), t.clone()));
    out.push((("token", "pasted"), format!("  {}\n", t)));
    out.push((("token", "upper"), format!("EJ1{}", t[3..].to_uppercase())));
    out.push((("token", "fingerprint"), harness_key().fingerprint().to_string()));
    for (name, body) in api_seeds() {
        out.push((("api", name), body.to_string()));
    }
    out.push((("manifest", "workload"), WORKLOAD_YAML.to_string()));
    out.push((("manifest", "namespace"), NAMESPACE_YAML.to_string()));
    out.push((("manifest", "two-documents"), format!("{WORKLOAD_YAML}---\n{NAMESPACE_YAML}")));
    out.push((("manifest", "flow"), FLOW_YAML.to_string()));
    out.push((("agent-manifest", "full"), AGENT_MANIFEST.to_string()));
    out.push((("agent-manifest", "minimal"), "[[workload]]\nname = \"a\"\nmodule = \"m.wasm\"\n".to_string()));
    out.push((("agent-config", "full"), AGENT_CONFIG.to_string()));
    out.push((("agent-config", "standalone"), "standalone = true\nmanifest = \"edge.toml\"\n".to_string()));
    out
}

fn api_seeds() -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    let sha = "ab".repeat(32);
    vec![
        ("deploy-minimal", json!({"module": sha, "cpu_millis": 100, "memory_bytes": 1 << 20})),
        (
            "deploy-full",
            json!({
                "module": sha, "replicas": 3, "cpu_millis": 250, "memory_bytes": 32 << 20,
                "env": [["LEVEL", "debug"]], "args": ["--fast"], "restart": "on-failure", "on_node_loss": "stay",
                "selector": {"zone": "a"}, "memory_limit_bytes": 64 << 20, "cpu_limit_millis": 500,
                "timeout_ms": 30000, "volumes": [{"name": "data", "size_bytes": 16 << 20}],
                "labels": {"app": "tick"}
            }),
        ),
        ("namespace", json!({"quota": {"cpu_millis": 4000, "memory_bytes": 1 << 30, "instances": 10}})),
        ("labels", json!({"set": {"zone": "a"}, "remove": ["rack"]})),
        ("token", json!({"ttl_ms": 86_400_000, "uses": 3, "node": "pi-1", "labels": {"zone": "a"}})),
        ("credential", json!({"name": "ci", "role": "edit", "namespace": "team-a", "ttl_ms": 3_600_000})),
    ]
}

const WORKLOAD_YAML: &str = "apiVersion: edge/v1
kind: Workload
metadata:
  name: tick
  namespace: default
  labels:
    app: tick
spec:
  module: ticker.wasm
  replicas: 2
  nodeSelector:
    role: edge
  resources:
    cpu: 100m
    memory: 32Mi
  limits:
    cpu: 500m
    memory: 64Mi
  env:
    - name: LEVEL
      value: debug
  args: [--fast]
  restartPolicy: OnFailure
  onNodeLoss: Stay
  timeout: 30s
  volumes:
    - name: data
      size: 16Mi
";

const NAMESPACE_YAML: &str = "apiVersion: edge/v1
kind: Namespace
metadata: {name: team-a, labels: {owner: ops}}
spec:
  quota: {cpu: '4', memory: 8Gi, instances: 20}
";

const FLOW_YAML: &str = "{apiVersion: edge/v1, kind: Workload, metadata: {name: w}, \
spec: {module: 'sha256:abababababababababababababababababababababababababababababababab', args: ['a: b', \"\\t\"]}}
";

const AGENT_MANIFEST: &str = "[[workload]]
name = \"tick\"
module = \"m.wasm\"
replicas = 2
cpu = \"100m\"
memory = \"32Mi\"
memory_limit = \"64Mi\"
cpu_limit = \"200m\"
timeout = \"30s\"
volumes = [\"data:16Mi\"]
restart = \"on-failure\"
args = [\"--fast\"]
env = { GREETING = \"hi\" }

[[workload]]
name = \"other\"
module = \"m.wasm\"
";

const AGENT_CONFIG: &str = "node = \"kitchen\"
broker = \"mqtt://192.168.1.10:1883\"
data = \"state\"
board = \"rpi-4\"
cpu = 4000
memory = \"2Gi\"
reserve-cpu = \"200m\"
reserve-memory = 268435456
heartbeat = \"60s\"
topic-prefix = \"edge\"
outbox-limit = 10000
module-cache = \"256Mi\"
engine = \"pulley\"
standalone = false

[labels]
zone = \"house\"
";

/// Hand-made hostile inputs, each named for what it tries. Every target gets every one.
fn hostile() -> Vec<File> {
    let mut out = Vec::new();
    let mut put = |name: &str, bytes: Vec<u8>| {
        out.push(File { dir: "hostile".into(), name: name.to_string(), bytes });
    };
    let max = leb128(u64::MAX);
    let spec = NodeSpec { issuer: u64::MAX, generation: u64::MAX, instances: sample_spec().instances };
    put("spec-generation-u64-max.bin", signed_spec(NODE, &spec));
    put("spec-signed-for-another-node.bin", signed_spec("pi-2", &sample_spec()));
    let Message::Heartbeat(mut hb) = gen::message(&mut Rng::new(1), 1) else { unreachable!() };
    (hb.at_ms, hb.applied_generation, hb.events_dropped, hb.last_event_seq, hb.oldest_unacked_seq, hb.store_id) =
        (u64::MAX, u64::MAX, u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    put("heartbeat-counters-u64-max.bin", encode(&Message::Heartbeat(hb)));
    put("events-ack-u64-max.bin", encode(&Message::EventsAck(edge_proto::EventsAck { store_id: 0, up_to: u64::MAX })));
    // Lists and strings whose declared length is far beyond the input: a decoder that preallocates from
    // them would ask for exabytes.
    put("spec-instances-length-u64-max.bin", [&[4u8, 2, 1, 1][..], &max].concat());
    put("events-length-u32-max.bin", [&[4u8, 3][..], &leb128(u64::from(u32::MAX)), &[0; 16]].concat());
    put("logs-length-2-pow-32.bin", [&[4u8, 4][..], &leb128(1 << 32)].concat());
    put("hello-string-length-u64-max.bin", [&[4u8, 0][..], &max, b"0.1.0"].concat());
    put("chunk-data-length-u64-max.bin", [&[4u8, 6, 0][..], &[2; 32], &[0], &[3; 32], &[0, 2], &max].concat());
    put("join-reply-signature-length-huge.bin", [&[0u8, 4][..], b"pi-1", &[4; 32], &leb128(1 << 40)].concat());
    put("signed-body-length-u64-max.bin", [&max[..], &[0; 64]].concat());
    put("version-overflows-u16.bin", vec![0x80, 0x80, 0x04, 0, 0]);
    put("version-u16-max.bin", vec![0xff, 0xff, 0x03, 0, 0]);
    put("varint-overlong-zero.bin", [&[4u8][..], &[0x80; 10], &[0x00, 0]].concat());
    put("variant-index-u32-max.bin", [&[4u8][..], &leb128(u64::from(u32::MAX)), &[0]].concat());
    put(
        "replay-u64-max-counters.bin",
        [&[0xfe][..], &u64::MAX.to_le_bytes(), &[0x80], &u64::MAX.to_le_bytes(), &[0x7f, 0x40]].concat(),
    );
    put("topic-another-node.txt", b"edge/v1\nedge/v1/nodes/pi-2/spec".to_vec());
    put("topic-empty-levels.txt", b"/\n//nodes///module/req".to_vec());
    put("join-request-another-node.bin", {
        let r = JoinRequest { token_id: [0xab; 8], token_secret: [0; 16], node: "pi-2".into(), node_key: [0; 32] };
        postcard::to_allocvec(&r).unwrap()
    });
    put("join-refusal-control-characters.bin", {
        let r = JoinReply::Refused(JoinRefusal::InvalidName { reason: "ok\r\nforged line \u{1b}[2J".into() });
        postcard::to_allocvec(&r).unwrap()
    });
    put(
        "token-another-cluster.txt",
        format!("EJ1{}::0001020304050607.08090a0b0c0d0e0f1011121314151617", "ff".repeat(16)).into_bytes(),
    );
    put("token-oversize.txt", format!("{}{}", token(), " ".repeat(300)).into_bytes());
    put("yaml-deep-sequences.yaml", "[".repeat(10_000).into_bytes());
    put("yaml-deep-mappings.yaml", (0..200).map(|i| format!("{}a:\n", " ".repeat(i))).collect::<String>().into_bytes());
    put(
        "yaml-billion-laughs.yaml",
        b"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n".to_vec(),
    );
    put(
        "manifest-giant-quantities.yaml",
        b"apiVersion: edge/v1\nkind: Workload\nmetadata: {name: big}\nspec:\n  module: m.wasm\n  replicas: 99999999999999999999\n  resources: {cpu: 4294967296m, memory: 16Ei}\n  limits: {memory: 1e308Ei}\n  timeout: 1e300d\n  volumes: [{name: data, size: 18446744073709551616}]\n".to_vec(),
    );
    put(
        "manifest-namespace-giant-quota.yaml",
        b"apiVersion: edge/v1\nkind: Namespace\nmetadata: {name: big}\nspec: {quota: {cpu: '18446744073709551615', memory: 15Ei, instances: 18446744073709551615}}\n".to_vec(),
    );
    put("json-deep-nesting.json", "[".repeat(10_000).into_bytes());
    put(
        "deploy-giant-numbers.json",
        format!(
            "{{\"module\":\"{}\",\"replicas\":4294967295,\"cpu_millis\":4294967295,\"memory_bytes\":18446744073709551615,\"memory_limit_bytes\":18446744073709551615,\"timeout_ms\":18446744073709551615,\"volumes\":[{{\"name\":\"d\",\"size_bytes\":18446744073709551615}}]}}",
            "ab".repeat(32)
        )
        .into_bytes(),
    );
    put(
        "deploy-long-keys.json",
        format!(
            "{{\"module\":\"x\",\"cpu_millis\":1,\"memory_bytes\":65536,\"selector\":{{\"{}\":\"{}\"}}}}",
            "k".repeat(5000),
            "é".repeat(5000)
        )
        .into_bytes(),
    );
    put("toml-deep-arrays.toml", format!("a = {}", "[".repeat(10_000)).into_bytes());
    put("toml-deep-tables.toml", format!("a = {}", "{b = ".repeat(2_000)).into_bytes());
    put(
        "agent-config-huge-numbers.toml",
        b"node = \"n\"\ncpu = 99999999999\noutbox-limit = 18446744073709551615\nmemory = -1\nheartbeat = \"1e300d\"\n"
            .to_vec(),
    );
    put(
        "agent-manifest-giant-quantities.toml",
        b"[[workload]]\nname = \"a\"\nmodule = \"m.wasm\"\nreplicas = 4294967295\ncpu = \"1e308\"\nmemory = \"99999999999Ei\"\ntimeout = \"1e400d\"\nvolumes = [\"d:18446744073709551616\"]\n".to_vec(),
    );
    put("quantities-giant.txt", b"340282366920938463463374607431768211456ms".to_vec());
    put("quantity-1e308-exbibytes.txt", b"1e308Ei".to_vec());
    put("quantity-u64-max-plus-one.txt", b"18446744073709551616".to_vec());
    put("empty.bin", Vec::new());
    out
}
