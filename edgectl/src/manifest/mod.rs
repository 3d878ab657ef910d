//! Declarative manifests (`edgectl apply|diff|delete -f`, `get -o yaml`), in Kubernetes shape:
//!
//! ```yaml
//! apiVersion: edge/v1
//! kind: Workload            # or Namespace (spec.quota.{cpu,memory,instances})
//! metadata: {name: tick, namespace: default, labels: {app: tick}}
//! spec:
//!   module: ticker.wasm     # relative to this file, or sha256:HEX of an uploaded module
//!   replicas: 2
//!   nodeSelector: {role: edge}
//!   resources: {cpu: 100m, memory: 32Mi}
//!   limits: {cpu: 500m, memory: 64Mi}
//!   env: [{name: LEVEL, value: debug}]
//!   args: [--fast]
//!   restartPolicy: Always   # OnFailure, Never
//!   onNodeLoss: Reschedule  # Stay
//!   timeout: 30s
//!   volumes: [{name: data, size: 16Mi}]
//! ```
//!
//! Layout: [`tree`] builds positioned YAML trees from `yaml-rust2`'s events, [`decode`] turns one into an object
//! or an error naming line:column and field path (both pure), [`source`] reads files, directories and stdin, and
//! [`render`] writes objects back as manifests.

pub mod decode;
pub mod render;
pub mod source;
pub mod tree;
