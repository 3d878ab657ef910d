//! Admission: a `DeployRequest` from the wire becomes a validated [`WorkloadSpec`], or a one-line reason it
//! cannot. Pure: what needs the cluster's state (the module exists, the namespace and its quota) is checked by
//! `Cluster::deploy`.

use std::collections::BTreeSet;

use edge_api::DeployRequest;
use edge_proto::quantity::format_memory;

use crate::cluster::ClusterError;
use crate::model::WorkloadSpec;

pub const MAX_REPLICAS: u32 = 1_000;
/// One WebAssembly page.
pub const MIN_MEMORY: u64 = 64 * 1024;

fn invalid(text: String) -> ClusterError {
    ClusterError::Invalid(text)
}

/// Checks a deploy request and builds the spec it asks for.
pub fn admit(req: DeployRequest) -> Result<WorkloadSpec, ClusterError> {
    let module = req.module.to_ascii_lowercase();
    if module.len() != 64 || !module.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(format!("module {:?} is not a sha256 (64 hex digits)", truncated(&req.module))));
    }
    if req.replicas > MAX_REPLICAS {
        return Err(invalid(format!("replicas {} exceeds the limit of {MAX_REPLICAS}", req.replicas)));
    }
    if req.memory_bytes < MIN_MEMORY {
        return Err(invalid(format!(
            "memory {} bytes is below the minimum of {MIN_MEMORY} (one WebAssembly page)",
            req.memory_bytes
        )));
    }
    let restart = match req.restart.as_deref() {
        None | Some("") => Default::default(),
        Some(r) => r.parse().map_err(|e| invalid(format!("restart {:?}: {e}", truncated(r))))?,
    };
    for (k, _) in &req.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(invalid(format!("environment variable name {:?} is invalid", truncated(k))));
        }
    }
    let on_node_loss = match req.on_node_loss.as_deref() {
        None | Some("") => Default::default(),
        Some(p) => p.parse().map_err(|e: String| invalid(format!("on_node_loss: {e}")))?,
    };
    for (k, v) in &req.selector {
        if k.is_empty() || k.len() > 63 || v.len() > 63 || k.contains('=') || v.contains('=') {
            return Err(invalid(format!("selector {}={} is invalid", truncated(k), truncated(v))));
        }
    }
    // The rule of node labels (`edgectl label node`): key 1–63 bytes, value 0–63, no `=` in either.
    for (k, v) in &req.labels {
        if k.is_empty() || k.len() > 63 || v.len() > 63 || k.contains('=') || v.contains('=') {
            return Err(invalid(format!("label {}={} is invalid", truncated(k), truncated(v))));
        }
    }
    if let Some(limit) = req.memory_limit_bytes {
        if limit < req.memory_bytes {
            return Err(invalid(format!(
                "memory limit {} is below the memory request {}",
                format_memory(limit),
                format_memory(req.memory_bytes)
            )));
        }
    }
    if req.cpu_limit_millis == Some(0) {
        return Err(invalid("cpu limit must be at least 1m".into()));
    }
    let mut volume_names = BTreeSet::new();
    for v in &req.volumes {
        edge_proto::validate_name(&v.name)
            .map_err(|e| invalid(format!("volume name {:?}: {e}", truncated(&v.name))))?;
        if v.size_bytes == 0 {
            return Err(invalid(format!("volume {}: size must be more than 0", v.name)));
        }
        if !volume_names.insert(v.name.as_str()) {
            return Err(invalid(format!("volume {} is declared twice", v.name)));
        }
    }
    Ok(WorkloadSpec {
        selector: req.selector,
        on_node_loss,
        module,
        replicas: req.replicas,
        cpu_millis: req.cpu_millis,
        memory_bytes: req.memory_bytes,
        env: req.env,
        args: req.args,
        restart,
        memory_limit_bytes: req.memory_limit_bytes,
        cpu_limit_millis: req.cpu_limit_millis.unwrap_or(0),
        timeout_ms: req.timeout_ms.unwrap_or(0),
        volumes: req.volumes,
        labels: req.labels,
    })
}

/// The request a stored spec would be sent as (for clients that round-trip a workload).
pub fn request_of(spec: &WorkloadSpec) -> DeployRequest {
    DeployRequest {
        module: spec.module.clone(),
        replicas: spec.replicas,
        cpu_millis: spec.cpu_millis,
        memory_bytes: spec.memory_bytes,
        env: spec.env.clone(),
        args: spec.args.clone(),
        restart: Some(spec.restart.as_str().to_string()),
        on_node_loss: Some(spec.on_node_loss.as_str().to_string()),
        selector: spec.selector.clone(),
        memory_limit_bytes: spec.memory_limit_bytes,
        cpu_limit_millis: (spec.cpu_limit_millis > 0).then_some(spec.cpu_limit_millis),
        timeout_ms: (spec.timeout_ms > 0).then_some(spec.timeout_ms),
        volumes: spec.volumes.clone(),
        labels: spec.labels.clone(),
    }
}

/// Echoes user input in an error at most 63 characters long, so an oversize value cannot grow the reply.
fn truncated(s: &str) -> String {
    match s.char_indices().nth(63) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> DeployRequest {
        serde_json::from_value(serde_json::json!({
            "module": "ab".repeat(32), "replicas": 2, "cpu_millis": 100, "memory_bytes": 1 << 20
        }))
        .unwrap()
    }

    #[test]
    fn a_valid_request_round_trips_through_its_spec() {
        let spec = admit(request()).unwrap();
        assert_eq!(spec.replicas, 2);
        assert_eq!(admit(request_of(&spec)).unwrap(), spec);
        let mut labelled = request();
        labelled.labels = [("app".into(), "tick".into()), ("tier".into(), String::new())].into();
        let spec = admit(labelled).unwrap();
        assert_eq!(spec.labels.len(), 2);
        assert_eq!(admit(request_of(&spec)).unwrap(), spec);
    }

    #[test]
    fn labels_are_not_part_of_the_template() {
        let a = admit(request()).unwrap();
        let mut r = request();
        r.labels = [("app".into(), "tick".into())].into();
        let b = admit(r).unwrap();
        assert!(a.same_template(&b), "relabelling rolls nothing out");
        // A record stored before labels existed still reads.
        let mut stored = serde_json::to_value(&a).unwrap();
        stored.as_object_mut().unwrap().remove("labels");
        let read: WorkloadSpec = serde_json::from_value(stored).unwrap();
        assert!(read.labels.is_empty());
    }

    #[test]
    fn each_bound_is_named() {
        type Change = Box<dyn Fn(&mut DeployRequest)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|r| r.replicas = 1_001), "replicas 1001 exceeds the limit of 1000"),
            (Box::new(|r| r.memory_bytes = 1), "below the minimum"),
            (Box::new(|r| r.module = "x".repeat(500)), "is not a sha256"),
            (Box::new(|r| r.restart = Some("sometimes".into())), "unknown restart policy"),
            (Box::new(|r| r.env = vec![("A=B".into(), "v".into())]), "environment variable name"),
            (Box::new(|r| r.memory_limit_bytes = Some(1)), "below the memory request"),
            (Box::new(|r| r.cpu_limit_millis = Some(0)), "at least 1m"),
            (Box::new(|r| r.labels = [("a=b".into(), "c".into())].into()), "label a=b=c is invalid"),
            (Box::new(|r| r.labels = [(String::new(), "c".into())].into()), "label =c is invalid"),
            (Box::new(|r| r.labels = [("app".into(), "v".repeat(64))].into()), "label app="),
        ];
        for (change, want) in cases {
            let mut r = request();
            change(&mut r);
            let e = admit(r).unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
            assert!(e.len() < 200, "{e:?} echoes too much");
        }
    }
}
