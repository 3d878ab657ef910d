//! Manifest decoding: every error names its line, column and field path.

use super::*;
use crate::manifest::tree::documents;

fn one(text: &str) -> Result<Option<Object>> {
    let docs = documents(text).expect("well-formed YAML");
    decode(&docs[0])
}

fn workload(text: &str) -> Workload {
    match one(text).unwrap() {
        Some(Object::Workload(w)) => w,
        other => panic!("not a workload: {other:?}"),
    }
}

fn error(text: &str) -> String {
    one(text).unwrap_err().to_string()
}

const TICK: &str = "apiVersion: edge/v1
kind: Workload
metadata:
  name: tick
  namespace: team-a
  labels:
    app: tick
spec:
  module: ../examples/ticker.wasm
  replicas: 2
  nodeSelector:
    role: edge
  resources:
    cpu: 250m
    memory: 64Mi
  limits:
    cpu: 0.5
    memory: 128Mi
  env:
    - name: LEVEL
      value: debug
    - name: EMPTY
  args: [--fast, \"2\"]
  restartPolicy: OnFailure
  onNodeLoss: Stay
  timeout: 30s
  volumes:
    - name: data
      size: 16Mi
";

#[test]
fn every_field_of_a_workload() {
    let w = workload(TICK);
    assert_eq!((w.name.as_str(), w.namespace.as_deref()), ("tick", Some("team-a")));
    assert_eq!(w.request.labels, BTreeMap::from([("app".into(), "tick".into())]));
    assert_eq!(w.module, ModuleRef::Path("../examples/ticker.wasm".into()));
    assert_eq!(w.module_at, Mark { line: 9, col: 3 });
    let r = &w.request;
    assert_eq!((r.replicas, r.cpu_millis, r.memory_bytes), (2, 250, 64 << 20));
    assert_eq!((r.cpu_limit_millis, r.memory_limit_bytes), (Some(500), Some(128 << 20)));
    assert_eq!(r.selector, BTreeMap::from([("role".into(), "edge".into())]));
    assert_eq!(r.env, vec![("LEVEL".into(), "debug".into()), ("EMPTY".into(), String::new())]);
    assert_eq!(r.args, vec!["--fast".to_string(), "2".into()]);
    assert_eq!((r.restart.as_deref(), r.on_node_loss.as_deref()), (Some("on-failure"), Some("stay")));
    assert_eq!(r.timeout_ms, Some(30_000));
    assert_eq!(r.volumes, vec![VolumeSpec { name: "data".into(), size_bytes: 16 << 20 }]);
}

#[test]
fn defaults_are_those_of_deploy() {
    let text = format!(
        "apiVersion: edge/v1\nkind: Workload\nmetadata: {{name: t}}\nspec:\n  module: sha256:{}\n",
        "AB".repeat(32)
    );
    let w = workload(&text);
    assert_eq!(w.module, ModuleRef::Sha256("ab".repeat(32)));
    let r = &w.request;
    assert_eq!((r.replicas, r.cpu_millis, r.memory_bytes), (1, 100, 32 << 20));
    assert_eq!((r.restart.as_deref(), r.on_node_loss.as_deref()), (Some("always"), Some("reschedule")));
    assert_eq!((r.cpu_limit_millis, r.memory_limit_bytes, r.timeout_ms), (None, None, None));
}

/// Every error names line:column and the field path.
#[test]
fn each_error_names_its_line_column_and_field() {
    let head = "apiVersion: edge/v1\nkind: Workload\nmetadata:\n  name: tick\nspec:\n  module: t.wasm\n";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{head}  resources:\n    memory: 64MB\n"),
            "8:5: spec.resources.memory: \"64MB\" is not a quantity (try 64Mi)",
        ),
        (
            format!("{head}  resources:\n    memory: lots\n"),
            "8:5: spec.resources.memory: \"lots\" is not a memory quantity",
        ),
        (format!("{head}  resources:\n    cpu: fast\n"), "8:5: spec.resources.cpu: \"fast\" is not a CPU quantity"),
        (format!("{head}  replica: 2\n"), "7:3: spec.replica: unknown field (did you mean replicas?)"),
        (format!("{head}  replicas: two\n"), "7:3: spec.replicas: expected a whole number, found \"two\""),
        (format!("{head}  replicas: 99999999999\n"), "7:3: spec.replicas: 99999999999 is too large"),
        (
            format!("{head}  resources:\n    requests: {{cpu: 1}}\n"),
            "8:5: spec.resources.requests: unknown field (requests are",
        ),
        (
            format!("{head}  restartPolicy: always\n"),
            "7:3: spec.restartPolicy: \"always\" is not one of Always, OnFailure, Never",
        ),
        (format!("{head}  onNodeLoss: move\n"), "7:3: spec.onNodeLoss: \"move\" is not one of Reschedule, Stay"),
        (format!("{head}  timeout: soon\n"), "7:3: spec.timeout: \"soon\" is not a duration"),
        (format!("{head}  env:\n    LEVEL: debug\n"), "7:3: spec.env: expected a list of {name, value}"),
        (
            format!("{head}  env:\n    - name: A\n      valu: 1\n"),
            "9:7: spec.env[0].valu: unknown field (did you mean value?)",
        ),
        (format!("{head}  env:\n    - value: 1\n"), "8:7: spec.env[0].name: required"),
        (format!("{head}  env:\n    - name: A\n    - name: A\n"), "9:7: spec.env[1].name: A is set twice"),
        (format!("{head}  args: --fast\n"), "7:3: spec.args: expected a list, found a scalar"),
        (format!("{head}  args: [[a]]\n"), "7:10: spec.args[0]: expected a string, found a list"),
        (format!("{head}  nodeSelector: [a]\n"), "7:3: spec.nodeSelector: expected a mapping, found a list"),
        (
            format!("{head}  volumes:\n    - name: Data\n      size: 1Mi\n"),
            "8:7: spec.volumes[0].name: \"Data\": name contains",
        ),
        (format!("{head}  volumes:\n    - name: d\n      size: 0\n"), "9:7: spec.volumes[0].size: must be more than 0"),
        (format!("{head}  volumes:\n    - name: d\n"), "8:7: spec.volumes[0].size: required"),
        (format!("{head}  replicas: 1\n  replicas: 2\n"), "8:3: spec.replicas: set twice"),
        (
            format!("{head}  template: {{}}\n"),
            "7:3: spec.template: unknown field (a workload runs one WebAssembly module",
        ),
        (head.replace("  module: t.wasm\n", "  replicas: 1\n"), "5:1: spec.module: required"),
        (
            head.replace("  module: t.wasm\n", "  module: sha256:abc\n"),
            "6:3: spec.module: \"sha256:abc\": a sha256 is 64 hex digits",
        ),
        (head.replace("name: tick", "name: Tick"), "4:3: metadata.name: \"Tick\": name contains 'T'"),
        (head.replace("  name: tick\n", "  nme: tick\n"), "3:1: metadata.name: required"),
        (head.replace("edge/v1", "apps/v1"), "1:1: apiVersion: \"apps/v1\" is not supported (use edge/v1)"),
        (
            head.replace("kind: Workload", "kind: Deployment"),
            "2:1: kind: \"Deployment\" is not supported here (use Workload)",
        ),
        (format!("{head}status: {{}}\n"), "7:1: status: unknown field"),
        (
            head.replace("metadata:\n  name: tick\n", "metadata:\n  name: tick\n  annotations: {a: b}\n"),
            "5:3: metadata.annotations: unknown field",
        ),
    ];
    for (text, want) in cases {
        let got = error(&text);
        assert!(got.starts_with(want), "for\n{text}\ngot:  {got}\nwant: {want}…");
    }
}

#[test]
fn namespaces() {
    let text = "apiVersion: edge/v1\nkind: Namespace\nmetadata: {name: team-a}\nspec:\n  quota: {cpu: 2, memory: 512Mi, instances: 10}\n";
    let Some(Object::Namespace(ns)) = one(text).unwrap() else { panic!() };
    assert_eq!(ns.name, "team-a");
    assert_eq!(ns.quota, Quota { cpu_millis: Some(2000), memory_bytes: Some(512 << 20), instances: Some(10) });
    let Some(Object::Namespace(bare)) = one("apiVersion: edge/v1\nkind: Namespace\nmetadata: {name: b}\n").unwrap()
    else {
        panic!()
    };
    assert_eq!(bare.quota, Quota::default());
    let e = error("apiVersion: edge/v1\nkind: Namespace\nmetadata:\n  name: b\n  namespace: c\n");
    assert!(e.starts_with("5:3: metadata.namespace: a Namespace is not"), "{e}");
    let e = error("apiVersion: edge/v1\nkind: Namespace\nmetadata: {name: b}\nspec: {quota: {pods: 3}}\n");
    assert!(e.starts_with("4:16: spec.quota.pods: unknown field"), "{e}");
}

#[test]
fn several_documents_decode_one_by_one() {
    let text = format!("{TICK}---\napiVersion: edge/v1\nkind: Namespace\nmetadata: {{name: team-a}}\n---\n");
    let docs = documents(&text).unwrap();
    let objects: Vec<Option<Object>> = docs.iter().map(|d| decode(d).unwrap()).collect();
    assert!(matches!(objects[0], Some(Object::Workload(_))));
    assert!(matches!(objects[1], Some(Object::Namespace(_))));
    assert!(objects.get(2).is_none_or(Option::is_none));
}

#[test]
fn suggestions_for_memory_units() {
    assert_eq!(memory_suggestion("64MB").as_deref(), Some("64Mi"));
    assert_eq!(memory_suggestion("1gb").as_deref(), Some("1Gi"));
    assert_eq!(memory_suggestion("512k").as_deref(), Some("512Ki"));
    assert_eq!(memory_suggestion("lots"), None);
    assert_eq!(memory_suggestion("64MBytes"), None);
    assert!(close("replicas", "replica") && close("nodeSelector", "nodeselector") && !close("env", "volumes"));
}
