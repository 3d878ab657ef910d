//! `edgectl`'s YAML manifests (`apply|diff|delete -f`): positioned trees (`manifest::tree`), decoding
//! (`manifest::decode`), the whole of `manifest::source::parse`, and rendering back (`manifest::render`).
//!
//! Invariants: what decodes renders as a manifest (`get -o yaml`) that decodes to the same object, as the
//! renderer promises (`get -o yaml | apply -f -` changes nothing); a workload keeps its name, namespace and
//! normal-form request, a namespace its name and quota.

use std::path::Path;

use edge_api::{NamespaceView, RolloutView, Usage, WorkloadView};
use edgectl::manifest::decode::{ModuleRef, Namespace, Object, Workload};
use edgectl::manifest::{render, source};
use edgectl::template::{from_view, normalize};

use super::{text, Target};

pub const TARGET: Target = Target {
    name: "manifest",
    about: "edgectl YAML manifests (source::parse) and their rendering back",
    run,
    dict: &[
        b"apiVersion: edge/v1\n",
        b"kind: Workload\n",
        b"kind: Namespace\n",
        b"metadata:",
        b"name:",
        b"namespace:",
        b"labels:",
        b"spec:",
        b"module:",
        b"sha256:",
        b"replicas:",
        b"nodeSelector:",
        b"resources:",
        b"limits:",
        b"cpu:",
        b"memory:",
        b"env:",
        b"value:",
        b"args:",
        b"restartPolicy:",
        b"onNodeLoss:",
        b"timeout:",
        b"volumes:",
        b"size:",
        b"quota:",
        b"instances:",
        b"\n---\n",
        b"- ",
        b"  ",
        b": ",
        b"&a ",
        b"*a",
        b"!!str ",
        b"|\n",
        b">-\n",
        b"%YAML 1.2\n",
        b"? ",
        b"~",
        b"null",
        b"Always",
        b"OnFailure",
        b"Stay",
    ],
    max_len: 4096,
};

/// The module a rendered workload names when its manifest named a file (rendering needs an uploaded one).
const SHA: &str = "abababababababababababababababababababababababababababababababab";

fn run(data: &[u8]) -> bool {
    let input = text(data);
    let Ok(loaded) = source::parse("fuzz.yaml", Path::new("."), &input) else { return false };
    for l in &loaded {
        match &l.object {
            Object::Workload(w) => workload_renders_back(w),
            Object::Namespace(n) => namespace_renders_back(n),
        }
    }
    true
}

fn decode_one(text: &str) -> Object {
    let mut objects = source::parse("rendered.yaml", Path::new("."), text)
        .unwrap_or_else(|e| panic!("a rendered manifest does not decode: {e:#}\n{text}"));
    assert_eq!(objects.len(), 1, "{text}");
    objects.remove(0).object
}

fn workload_renders_back(w: &Workload) {
    let module = match &w.module {
        ModuleRef::Sha256(sha) => sha.clone(),
        ModuleRef::Path(_) => SHA.to_string(),
    };
    let request = normalize(edge_api::DeployRequest { module: module.clone(), ..w.request.clone() });
    let view = WorkloadView {
        name: w.name.clone(),
        namespace: w.namespace.clone().unwrap_or_else(|| "default".into()),
        replicas: request.replicas,
        module: module.clone(),
        cpu_millis: request.cpu_millis,
        memory_bytes: request.memory_bytes,
        restart: request.restart.clone().unwrap_or_default(),
        on_node_loss: request.on_node_loss.clone().unwrap_or_default(),
        selector: request.selector.clone(),
        env: request.env.clone(),
        args: request.args.clone(),
        memory_limit_bytes: request.memory_limit_bytes,
        cpu_limit_millis: request.cpu_limit_millis,
        timeout_ms: request.timeout_ms,
        volumes: request.volumes.clone(),
        labels: request.labels.clone(),
        revision: 1,
        created: None,
        instances: Vec::new(),
        rollout: RolloutView { state: "complete".into(), reason: None, updated: 0, ready: 0, old: 0 },
        revisions: Vec::new(),
    };
    assert_eq!(from_view(&view), request, "the view does not hold the request");
    let text = render::workload(&view);
    let Object::Workload(back) = decode_one(&text) else { panic!("a workload rendered as something else\n{text}") };
    assert_eq!(back.module, ModuleRef::Sha256(module.clone()), "{text}");
    assert_eq!((back.name.as_str(), back.namespace.as_deref()), (view.name.as_str(), Some(view.namespace.as_str())));
    let read = normalize(edge_api::DeployRequest { module, ..back.request });
    assert_eq!(read, request, "rendered and read back differs:\n{text}");
}

fn namespace_renders_back(n: &Namespace) {
    let view = NamespaceView { name: n.name.clone(), quota: n.quota, used: Usage::default(), workloads: 0 };
    let text = render::namespace(&view);
    let Object::Namespace(back) = decode_one(&text) else { panic!("a namespace rendered as something else\n{text}") };
    assert_eq!((back.name, back.quota), (n.name.clone(), n.quota), "rendered and read back differs:\n{text}");
}
