//! Admission: a `DeployRequest` from the wire becomes a validated [`WorkloadSpec`], or a one-line reason it
//! cannot. Pure: every field is held to its bound in [`super::bounds`]; what needs the cluster's state (the
//! module exists, the namespace and its quota, what the nodes can hold, the size of one instance's spec) is
//! checked by `Cluster::deploy`.

use edge_api::DeployRequest;
use edge_proto::quantity::format_memory;

use super::bounds::{self, truncated, MAX_CPU_MILLIS, MAX_REPLICAS, MAX_TIMEOUT_MS};
use crate::cluster::ClusterError;
use crate::model::WorkloadSpec;

fn invalid(text: String) -> ClusterError {
    ClusterError::Invalid(text)
}

/// Checks a deploy request and builds the spec it asks for.
pub fn admit(req: DeployRequest) -> Result<WorkloadSpec, ClusterError> {
    let module = req.module.to_ascii_lowercase();
    if module.len() != 64 || !module.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(format!(
            "module {:?} ({} bytes) is not a sha256 (64 hex digits)",
            truncated(&req.module),
            req.module.len()
        )));
    }
    bounds::at_most("replicas", req.replicas.into(), MAX_REPLICAS.into(), "")?;
    bounds::at_most("cpu_millis", req.cpu_millis.into(), MAX_CPU_MILLIS.into(), "m")?;
    bounds::memory("memory_bytes", req.memory_bytes)?;
    let restart = match req.restart.as_deref() {
        None | Some("") => Default::default(),
        Some(r) => r.parse().map_err(|e| invalid(format!("restart {:?}: {e}", truncated(r))))?,
    };
    bounds::env(&req.env)?;
    bounds::args(&req.args)?;
    let on_node_loss = match req.on_node_loss.as_deref() {
        None | Some("") => Default::default(),
        Some(p) => p
            .parse()
            .map_err(|_: String| invalid(format!("on_node_loss {:?}: expected reschedule or stay", truncated(p))))?,
    };
    bounds::labels("selector", &req.selector)?;
    bounds::labels("label", &req.labels)?;
    if let Some(limit) = req.memory_limit_bytes {
        bounds::memory("memory_limit_bytes", limit)?;
        if limit < req.memory_bytes {
            return Err(invalid(format!(
                "memory limit {} is below the memory request {}",
                format_memory(limit),
                format_memory(req.memory_bytes)
            )));
        }
    }
    if let Some(limit) = req.cpu_limit_millis {
        if limit == 0 {
            return Err(invalid("cpu limit must be at least 1m".into()));
        }
        bounds::at_most("cpu_limit_millis", limit.into(), MAX_CPU_MILLIS.into(), "m")?;
    }
    if let Some(timeout) = req.timeout_ms {
        bounds::at_most("timeout_ms", timeout, MAX_TIMEOUT_MS, " ms")?;
    }
    bounds::volumes(&req.volumes)?;
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
        // Copied from the module's record at deploy (`Cluster::deploy`); clients do not say.
        abi: Default::default(),
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

    fn vol(name: &str, size_bytes: u64) -> edge_proto::VolumeSpec {
        edge_proto::VolumeSpec { name: name.into(), size_bytes }
    }

    fn many(n: usize) -> std::collections::BTreeMap<String, String> {
        (0..n).map(|i| (format!("k{i}"), "v".into())).collect()
    }

    /// A request with every field at its bound: admitted, and one instance of it fits the per-instance budget
    /// of a node spec, so no deploy admission accepts can be refused for its size alone.
    #[test]
    fn a_request_at_every_bound_is_admitted_and_fits_one_instance_budget() {
        use crate::api::bounds::*;
        let mut r = request();
        r.replicas = MAX_REPLICAS;
        r.cpu_millis = MAX_CPU_MILLIS;
        r.cpu_limit_millis = Some(MAX_CPU_MILLIS);
        r.memory_bytes = MAX_MEMORY;
        r.memory_limit_bytes = Some(MAX_MEMORY);
        r.timeout_ms = Some(MAX_TIMEOUT_MS);
        // 256 variables, names of 256 bytes for the first ones, 32 KiB in all.
        let per = MAX_ENV_TOTAL / MAX_ENV;
        r.env = (0..MAX_ENV).map(|i| (format!("{i:0>3}{}", "N".repeat(per / 2 - 3)), "v".repeat(per / 2))).collect();
        r.args = (0..MAX_ARGS).map(|_| "a".repeat(MAX_ARGS_TOTAL / MAX_ARGS)).collect();
        r.volumes = (0..MAX_VOLUMES).map(|i| vol(&format!("{i:0>63}"), MAX_VOLUME_BYTES)).collect();
        r.labels = many(MAX_LABELS);
        r.selector = many(MAX_LABELS);
        let spec = admit(r).unwrap();
        let (ns, name) = ("n".repeat(MAX_NAME), "w".repeat(MAX_NAME));
        let bytes = crate::spec_size::instance_bytes(&ns, &name, &spec);
        assert!(bytes <= crate::spec_size::INSTANCE_BUDGET, "{bytes} bytes");
    }

    #[test]
    fn each_bound_is_named() {
        type Change = Box<dyn Fn(&mut DeployRequest)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|r| r.replicas = 1_001), "replicas 1001 is above the limit of 1000"),
            (Box::new(|r| r.memory_bytes = 1), "below the minimum"),
            (Box::new(|r| r.memory_bytes = u64::MAX), "memory_bytes 18446744073709551615 bytes is above the limit"),
            (Box::new(|r| r.memory_limit_bytes = Some(u64::MAX)), "memory_limit_bytes 18446744073709551615 bytes"),
            (Box::new(|r| r.timeout_ms = Some(u64::MAX)), "timeout_ms 18446744073709551615 ms is above the limit"),
            (Box::new(|r| r.cpu_millis = u32::MAX), "cpu_millis 4294967295m is above the limit of 1000000m"),
            (Box::new(|r| r.cpu_limit_millis = Some(1_000_001)), "cpu_limit_millis 1000001m is above the limit"),
            (Box::new(|r| r.env = vec![("BIG".into(), "x".repeat(600_000))]), "env \"BIG\" value is 600000 bytes"),
            (Box::new(|r| r.args = vec!["x".repeat(5_000)]), "args[0] is 5000 bytes, above the limit of 4096"),
            (Box::new(|r| r.args = vec!["x".into(); 60_000]), "args has 60000 entries, above the limit of 256"),
            (Box::new(|r| r.volumes = vec![vol("v", u64::MAX)]), "volume v size 18446744073709551615 bytes"),
            (Box::new(|r| r.volumes = (0..17).map(|i| vol(&format!("v{i}"), 1)).collect()), "volumes has 17"),
            (Box::new(|r| r.labels = many(65)), "labels has 65 entries, above the limit of 64"),
            (Box::new(|r| r.selector = many(65)), "selectors has 65 entries, above the limit of 64"),
            (Box::new(|r| r.restart = Some("x".repeat(10_000))), "restart \"xxx"),
            (Box::new(|r| r.on_node_loss = Some("x".repeat(10_000))), "expected reschedule or stay"),
            (Box::new(|r| r.module = "x".repeat(500)), "is not a sha256"),
            (Box::new(|r| r.restart = Some("sometimes".into())), "unknown restart policy"),
            (Box::new(|r| r.env = vec![("A=B".into(), "v".into())]), "environment variable name"),
            (Box::new(|r| r.memory_limit_bytes = Some(65_536)), "below the memory request"),
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
            assert!(e.chars().count() < 200 && !e.contains('\n'), "{e:?} echoes too much");
        }
    }
}
