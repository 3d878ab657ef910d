//! Objects as manifests (`get workload NAME -o yaml`): what `apply -f` reads back as `unchanged`, and JSON
//! values as YAML for everything else `-o yaml` prints. Pure; `yaml-rust2`'s emitter does the quoting.

use edge_api::{NamespaceView, WorkloadView};
use edge_proto::quantity::{format_cpu, format_duration, format_memory_exact};
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter};

use super::decode::API_VERSION;
use crate::template::{from_view, manifest_word, NODE_LOSS_POLICIES, RESTART_POLICIES};

fn s(text: impl Into<String>) -> Yaml {
    Yaml::String(text.into())
}

fn map<const N: usize>(entries: [(&str, Yaml); N]) -> Yaml {
    let mut h = Hash::new();
    for (k, v) in entries {
        h.insert(s(k), v);
    }
    Yaml::Hash(h)
}

fn push(y: &mut Yaml, key: &str, value: Yaml) {
    if let Yaml::Hash(h) = y {
        h.insert(s(key), value);
    }
}

/// Emits one document (with its `---` line).
fn emit(doc: &Yaml) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an error here would be the emitter's bug, shown rather than hidden.
    if let Err(e) = YamlEmitter::new(&mut out).dump(doc) {
        out = format!("# cannot render: {e}");
    }
    out.push('\n');
    out
}

/// A workload as the manifest that would set it again.
pub fn workload(w: &WorkloadView) -> String {
    let r = from_view(w);
    let mut spec = map([("module", s(format!("sha256:{}", r.module))), ("replicas", Yaml::Integer(r.replicas.into()))]);
    if !r.selector.is_empty() {
        let mut h = Hash::new();
        for (k, v) in &r.selector {
            h.insert(s(k.as_str()), s(v.as_str()));
        }
        push(&mut spec, "nodeSelector", Yaml::Hash(h));
    }
    push(
        &mut spec,
        "resources",
        map([("cpu", s(format_cpu(r.cpu_millis))), ("memory", s(format_memory_exact(r.memory_bytes)))]),
    );
    if r.cpu_limit_millis.is_some() || r.memory_limit_bytes.is_some() {
        let mut limits = Yaml::Hash(Hash::new());
        if let Some(c) = r.cpu_limit_millis {
            push(&mut limits, "cpu", s(format_cpu(c)));
        }
        if let Some(m) = r.memory_limit_bytes {
            push(&mut limits, "memory", s(format_memory_exact(m)));
        }
        push(&mut spec, "limits", limits);
    }
    if !r.env.is_empty() {
        let env = r.env.iter().map(|(k, v)| map([("name", s(k.as_str())), ("value", s(v.as_str()))])).collect();
        push(&mut spec, "env", Yaml::Array(env));
    }
    if !r.args.is_empty() {
        push(&mut spec, "args", Yaml::Array(r.args.iter().map(|a| s(a.as_str())).collect()));
    }
    push(&mut spec, "restartPolicy", s(manifest_word(&RESTART_POLICIES, r.restart.as_deref().unwrap_or_default())));
    push(&mut spec, "onNodeLoss", s(manifest_word(&NODE_LOSS_POLICIES, r.on_node_loss.as_deref().unwrap_or_default())));
    if let Some(t) = r.timeout_ms {
        push(&mut spec, "timeout", s(format_duration(std::time::Duration::from_millis(t))));
    }
    if !r.volumes.is_empty() {
        let volumes = r
            .volumes
            .iter()
            .map(|v| map([("name", s(v.name.as_str())), ("size", s(format_memory_exact(v.size_bytes)))]));
        push(&mut spec, "volumes", Yaml::Array(volumes.collect()));
    }
    let mut metadata = map([("name", s(w.name.as_str())), ("namespace", s(w.namespace.as_str()))]);
    if !r.labels.is_empty() {
        push(
            &mut metadata,
            "labels",
            Yaml::Hash(r.labels.iter().map(|(k, v)| (s(k.as_str()), s(v.as_str()))).collect()),
        );
    }
    emit(&map([("apiVersion", s(API_VERSION)), ("kind", s("Workload")), ("metadata", metadata), ("spec", spec)]))
}

/// A namespace as the manifest that would set it again.
pub fn namespace(n: &NamespaceView) -> String {
    let mut doc = map([
        ("apiVersion", s(API_VERSION)),
        ("kind", s("Namespace")),
        ("metadata", map([("name", s(n.name.as_str()))])),
    ]);
    let q = &n.quota;
    if q.cpu_millis.is_some() || q.memory_bytes.is_some() || q.instances.is_some() {
        let mut quota = Yaml::Hash(Hash::new());
        if let Some(c) = q.cpu_millis {
            push(&mut quota, "cpu", s(format_cpu(u32::try_from(c).unwrap_or(u32::MAX))));
        }
        if let Some(m) = q.memory_bytes {
            push(&mut quota, "memory", s(format_memory_exact(m)));
        }
        if let Some(i) = q.instances {
            push(&mut quota, "instances", Yaml::Integer(i64::try_from(i).unwrap_or(i64::MAX)));
        }
        push(&mut doc, "spec", map([("quota", quota)]));
    }
    emit(&doc)
}

/// Any JSON value as YAML (nodes, modules, …).
pub fn json(value: &serde_json::Value) -> String {
    fn convert(v: &serde_json::Value) -> Yaml {
        match v {
            serde_json::Value::Null => Yaml::Null,
            serde_json::Value::Bool(b) => Yaml::Boolean(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Yaml::Integer(i),
                None => Yaml::Real(n.to_string()),
            },
            serde_json::Value::String(t) => s(t.as_str()),
            serde_json::Value::Array(items) => Yaml::Array(items.iter().map(convert).collect()),
            serde_json::Value::Object(o) => Yaml::Hash(o.iter().map(|(k, v)| (s(k.as_str()), convert(v))).collect()),
        }
    }
    emit(&convert(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::decode::{decode, ModuleRef, Object};
    use crate::manifest::tree::documents;
    use edge_api::RolloutView;

    fn view() -> WorkloadView {
        let tricky = ["true", "1", "a: b", "", "two\nlines", "ünï", "- x", "#x", "~", "'q'", "\"dq\"", " pad "];
        WorkloadView {
            name: "tick".into(),
            namespace: "team-a".into(),
            replicas: 3,
            module: "ab".repeat(32),
            cpu_millis: 250,
            memory_bytes: 100_000_000,
            restart: "on-failure".into(),
            on_node_loss: "stay".into(),
            selector: [("role".to_string(), "edge".to_string()), ("n".into(), "1".into())].into(),
            env: tricky.iter().enumerate().map(|(i, v)| (format!("V{i}"), v.to_string())).collect(),
            args: tricky.iter().map(|v| v.to_string()).collect(),
            memory_limit_bytes: Some(128 << 20),
            cpu_limit_millis: Some(1500),
            timeout_ms: Some(90_000),
            volumes: vec![edge_proto::VolumeSpec { name: "data".into(), size_bytes: 16 << 20 }],
            labels: [("app".to_string(), "tick".to_string()), ("tier".into(), "true".into())].into(),
            revision: 4,
            created: None,
            instances: Vec::new(),
            rollout: RolloutView { state: "complete".into(), reason: None, updated: 0, ready: 0, old: 0 },
            revisions: Vec::new(),
        }
    }

    /// `get -o yaml | apply -f -` is a no-op: the manifest decodes to exactly what the controller holds.
    #[test]
    fn a_rendered_workload_reads_back_as_the_same_spec() {
        for w in [
            view(),
            WorkloadView {
                env: vec![],
                args: vec![],
                volumes: vec![],
                timeout_ms: None,
                memory_limit_bytes: None,
                cpu_limit_millis: None,
                selector: Default::default(),
                labels: Default::default(),
                ..view()
            },
        ] {
            let text = workload(&w);
            let docs = documents(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let Some(Object::Workload(m)) = decode(&docs[0]).unwrap_or_else(|e| panic!("{e}\n{text}")) else {
                panic!("{text}")
            };
            assert_eq!(m.module, ModuleRef::Sha256(w.module.clone()));
            assert_eq!((m.name.as_str(), m.namespace.as_deref()), ("tick", Some("team-a")));
            let read = crate::template::normalize(edge_api::DeployRequest { module: w.module.clone(), ..m.request });
            assert_eq!(read, from_view(&w), "{text}");
        }
        let text = workload(&view());
        assert!(text.contains("    role: edge\n") && text.contains("  replicas: 3\n"), "{text}");
        assert!(text.contains("  labels:\n    app: tick\n"), "{text}");
    }

    #[test]
    fn a_rendered_namespace_reads_back() {
        let n = NamespaceView {
            name: "team-a".into(),
            quota: edge_api::Quota { cpu_millis: Some(2000), memory_bytes: Some(512 << 20), instances: Some(7) },
            used: Default::default(),
            workloads: 0,
        };
        let docs = documents(&namespace(&n)).unwrap();
        let Some(Object::Namespace(m)) = decode(&docs[0]).unwrap() else { panic!() };
        assert_eq!((m.name, m.quota), (n.name, n.quota));
    }
}
