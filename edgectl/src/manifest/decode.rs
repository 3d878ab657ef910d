//! Decoding one YAML document into a manifest object: `apiVersion: edge/v1`, `kind: Workload` or `Namespace`,
//! `metadata` and `spec`, shaped as Kubernetes users expect. Every error names the line and column and the
//! field path (`7:5: spec.resources.memory: "64MB" is not a quantity (try 64Mi)`); unknown fields are errors.
//! Pure: a module path is kept as written, and resolved and read by the caller.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use edge_api::{DeployRequest, Quota};
use edge_proto::quantity::{parse_cpu, parse_duration_ms, parse_memory};
use edge_proto::VolumeSpec;

use super::tree::{Mark, Node, Value};
use crate::template::{NODE_LOSS_POLICIES, RESTART_POLICIES};

pub const API_VERSION: &str = "edge/v1";

/// What `spec.module` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleRef {
    /// An uploaded module, by its sha256 (lowercase hex).
    Sha256(String),
    /// A `.wasm` file, as written (relative paths are relative to the manifest's directory).
    Path(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub name: String,
    pub namespace: Option<String>,
    pub module: ModuleRef,
    pub module_at: Mark,
    /// Everything the manifest asks for, `metadata.labels` included (`request.labels`); `module` stays empty
    /// until the caller resolved [`Workload::module`].
    pub request: DeployRequest,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Namespace {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub labels_at: Option<Mark>,
    pub quota: Quota,
}

// A command holds a few of these, briefly: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Workload(Workload),
    Namespace(Namespace),
}

/// Why a document is not a manifest: where, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub at: Mark,
    /// `spec.resources.memory`; empty for the document itself.
    pub path: String,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.at, self.message)
        } else {
            write!(f, "{}: {}: {}", self.at, self.path, self.message)
        }
    }
}

type Result<T> = std::result::Result<T, DecodeError>;

/// One value in the document: the node, where to point at it (the key of a mapping entry, so the line reads
/// `memory: 64MB`), and its path.
#[derive(Clone, Copy)]
struct Field<'a> {
    node: &'a Node,
    at: Mark,
    path: &'a str,
}

impl<'a> Field<'a> {
    fn error(&self, message: impl Into<String>) -> DecodeError {
        DecodeError { at: self.at, path: self.path.to_string(), message: message.into() }
    }

    fn string(&self) -> Result<String> {
        match &self.node.value {
            Value::Scalar { text, .. } => Ok(text.clone()),
            _ => Err(self.error(format!("expected a string, found {}", self.node.kind()))),
        }
    }

    fn whole<T: std::str::FromStr>(&self) -> Result<T> {
        match &self.node.value {
            Value::Scalar { text, plain: true } if text.bytes().all(|b| b.is_ascii_digit()) => {
                text.parse().map_err(|_| self.error(format!("{text} is too large")))
            }
            Value::Scalar { text, .. } => Err(self.error(format!("expected a whole number, found {text:?}"))),
            _ => Err(self.error(format!("expected a whole number, found {}", self.node.kind()))),
        }
    }

    /// The items of a list, each pointed at where it starts.
    fn list(&self) -> Result<Vec<(Node, String)>> {
        match &self.node.value {
            Value::Seq(items) => {
                Ok(items.iter().enumerate().map(|(i, n)| (n.clone(), format!("{}[{i}]", self.path))).collect())
            }
            _ => Err(self.error(format!("expected a list, found {}", self.node.kind()))),
        }
    }

    fn mapping(&self) -> Result<Fields<'a>> {
        Fields::of(self.node, self.at, self.path)
    }

    /// A mapping of strings to strings (labels, a node selector).
    fn string_map(&self) -> Result<BTreeMap<String, String>> {
        let fields = self.mapping()?;
        let mut out = BTreeMap::new();
        for (key, key_at, value) in &fields.entries {
            let path = format!("{}.{key}", self.path);
            let v = Field { node: value, at: *key_at, path: &path }.string()?;
            if key.is_empty() || key.len() > 63 || key.contains('=') || v.len() > 63 || v.contains('=') {
                return Err(DecodeError {
                    at: *key_at,
                    path,
                    message: "keys and values are at most 63 characters, keys not empty, neither with '='".into(),
                });
            }
            out.insert(key.to_string(), v);
        }
        Ok(out)
    }
}

/// The entries of a mapping, taken one by one; what is left at [`Fields::finish`] is an unknown field.
struct Fields<'a> {
    at: Mark,
    path: &'a str,
    /// Key, where the key is, value; null values are left out (a field set to null is a field not set).
    entries: Vec<(&'a str, Mark, &'a Node)>,
}

impl<'a> Fields<'a> {
    fn of(node: &'a Node, at: Mark, path: &'a str) -> Result<Fields<'a>> {
        let mut entries = Vec::new();
        let mut seen = BTreeSet::new();
        match &node.value {
            _ if node.is_null() => {}
            Value::Map(pairs) => {
                for (k, v) in pairs {
                    let Value::Scalar { text, .. } = &k.value else {
                        return Err(DecodeError {
                            at: k.at,
                            path: path.to_string(),
                            message: format!("expected a field name, found {}", k.kind()),
                        });
                    };
                    if !seen.insert(text.as_str()) {
                        return Err(DecodeError { at: k.at, path: join(path, text), message: "set twice".into() });
                    }
                    if !v.is_null() {
                        entries.push((text.as_str(), k.at, v));
                    }
                }
            }
            _ => {
                return Err(DecodeError {
                    at,
                    path: path.to_string(),
                    message: format!("expected a mapping, found {}", node.kind()),
                })
            }
        }
        Ok(Fields { at, path, entries })
    }

    fn take(&mut self, key: &str) -> Option<(Mark, &'a Node)> {
        let i = self.entries.iter().position(|(k, _, _)| *k == key)?;
        let (_, at, node) = self.entries.remove(i);
        Some((at, node))
    }

    fn required(&mut self, key: &str, hint: &str) -> Result<(Mark, &'a Node)> {
        self.take(key).ok_or_else(|| DecodeError {
            at: self.at,
            path: join(self.path, key),
            message: format!("required{hint}"),
        })
    }

    /// Refuses the first field no one took, with the closest known name when there is one.
    fn finish(self, known: &[&str]) -> Result<()> {
        let Some((key, at, _)) = self.entries.first() else { return Ok(()) };
        let path = join(self.path, key);
        let hint = match hint_for(&path) {
            Some(h) => format!(" ({h})"),
            None => match known.iter().find(|k| close(k, key)) {
                Some(k) => format!(" (did you mean {k}?)"),
                None => format!(" (known here: {})", known.join(", ")),
            },
        };
        Err(DecodeError { at: *at, path, message: format!("unknown field{hint}") })
    }
}

/// Kubernetes habits that have another spelling here.
fn hint_for(path: &str) -> Option<&'static str> {
    Some(match path {
        "spec.template" | "spec.containers" | "spec.image" => "a workload runs one WebAssembly module: spec.module",
        "spec.resources.requests" => "requests are spec.resources.cpu and spec.resources.memory",
        "spec.resources.limits" => "limits are spec.limits.cpu and spec.limits.memory",
        "spec.selector" => "node labels to match are spec.nodeSelector",
        "spec.command" => "arguments are spec.args",
        _ => return None,
    })
}

/// Same word but for case, or at most two edits apart: likely a typo of it.
fn close(known: &str, typed: &str) -> bool {
    if known.eq_ignore_ascii_case(typed) {
        return true;
    }
    let (a, b): (Vec<char>, Vec<char>) = (known.chars().collect(), typed.chars().collect());
    if a.len().abs_diff(b.len()) > 2 || b.len() > 64 {
        return false;
    }
    // Levenshtein distance, one row at a time.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()] <= 2
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Decodes one document; `None` for an empty one (a stray `---`).
pub fn decode(doc: &Node) -> Result<Option<Object>> {
    if doc.is_null() {
        return Ok(None);
    }
    let mut top = Fields::of(doc, doc.at, "")?;
    let (at, node) = top.required("apiVersion", " (apiVersion: edge/v1)")?;
    let api = Field { node, at, path: "apiVersion" };
    let version = api.string()?;
    if version != API_VERSION {
        return Err(api.error(format!("{version:?} is not supported (use {API_VERSION})")));
    }
    let (at, node) = top.required("kind", " (Workload or Namespace)")?;
    let kind_field = Field { node, at, path: "kind" };
    let kind = kind_field.string()?;
    let (meta_at, meta) = top.required("metadata", " (metadata.name at least)")?;
    let spec = top.take("spec");
    top.finish(&["apiVersion", "kind", "metadata", "spec"])?;
    let meta = Metadata::decode(Field { node: meta, at: meta_at, path: "metadata" })?;
    match kind.as_str() {
        "Workload" => {
            let (spec_at, spec) = spec.ok_or_else(|| DecodeError {
                at: doc.at,
                path: "spec".into(),
                message: "required (spec.module at least)".into(),
            })?;
            let (module, module_at, mut request) = workload_spec(Field { node: spec, at: spec_at, path: "spec" })?;
            request.labels = meta.labels;
            Ok(Some(Object::Workload(Workload {
                name: meta.name,
                namespace: meta.namespace,
                module,
                module_at,
                request,
            })))
        }
        "Namespace" => {
            if let Some(at) = meta.namespace_at {
                let message = "a Namespace is not inside a namespace".to_string();
                return Err(DecodeError { at, path: "metadata.namespace".into(), message });
            }
            let quota = match spec {
                Some((at, node)) => namespace_spec(Field { node, at, path: "spec" })?,
                None => Quota::default(),
            };
            Ok(Some(Object::Namespace(Namespace {
                name: meta.name,
                labels: meta.labels,
                labels_at: meta.labels_at,
                quota,
            })))
        }
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Pod" | "Job" => {
            Err(kind_field.error(format!("{kind:?} is not supported here (use Workload)")))
        }
        _ => Err(kind_field.error(format!("{kind:?} is not supported (Workload or Namespace)"))),
    }
}

struct Metadata {
    name: String,
    namespace: Option<String>,
    namespace_at: Option<Mark>,
    labels: BTreeMap<String, String>,
    labels_at: Option<Mark>,
}

impl Metadata {
    fn decode(f: Field<'_>) -> Result<Metadata> {
        let mut m = f.mapping()?;
        let (at, node) = m.required("name", "")?;
        let name = valid_name(Field { node, at, path: "metadata.name" })?;
        let namespace = m.take("namespace");
        let namespace_at = namespace.map(|(at, _)| at);
        let namespace =
            namespace.map(|(at, node)| valid_name(Field { node, at, path: "metadata.namespace" })).transpose()?;
        let labels = m.take("labels");
        let labels_at = labels.map(|(at, _)| at);
        let labels = match labels {
            Some((at, node)) => Field { node, at, path: "metadata.labels" }.string_map()?,
            None => BTreeMap::new(),
        };
        m.finish(&["name", "namespace", "labels"])?;
        Ok(Metadata { name, namespace, namespace_at, labels, labels_at })
    }
}

fn valid_name(f: Field<'_>) -> Result<String> {
    let name = f.string()?;
    edge_proto::validate_name(&name).map_err(|e| f.error(format!("{name:?}: {e}")))?;
    Ok(name)
}

fn cpu(f: Field<'_>) -> Result<u32> {
    let text = f.string()?;
    parse_cpu(&text).map_err(|_| f.error(format!("{text:?} is not a CPU quantity (examples: 250m, 0.5, 2)")))
}

fn memory(f: Field<'_>) -> Result<u64> {
    let text = f.string()?;
    parse_memory(&text).map_err(|_| {
        f.error(match memory_suggestion(&text) {
            Some(s) => format!("{text:?} is not a quantity (try {s})"),
            None => format!("{text:?} is not a memory quantity (examples: 64Mi, 1Gi, 500M)"),
        })
    })
}

/// `64MB`, `64mb`, `64m`, `64mi` → `64Mi`: the binary unit such a spelling most likely means.
fn memory_suggestion(text: &str) -> Option<String> {
    let text = text.trim();
    let digits = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(digits);
    let unit = unit.trim_start();
    let prefix = match unit.chars().next()?.to_ascii_uppercase() {
        c @ ('K' | 'M' | 'G' | 'T' | 'P' | 'E') => c,
        _ => return None,
    };
    let rest = &unit[1..];
    let known = ["", "B", "b", "i", "iB", "I", "IB", "ib"];
    (!number.is_empty() && known.contains(&rest)).then(|| format!("{number}{prefix}i"))
}

/// One of `table`'s manifest spellings, as its wire value.
fn word(f: Field<'_>, table: &[(&'static str, &'static str)]) -> Result<String> {
    let text = f.string()?;
    match table.iter().find(|(_, m)| *m == text) {
        Some((wire, _)) => Ok(wire.to_string()),
        None => {
            let words: Vec<&str> = table.iter().map(|(_, m)| *m).collect();
            Err(f.error(format!("{text:?} is not one of {}", words.join(", "))))
        }
    }
}

const SPEC_FIELDS: [&str; 11] = [
    "module",
    "replicas",
    "nodeSelector",
    "resources",
    "limits",
    "env",
    "args",
    "restartPolicy",
    "onNodeLoss",
    "timeout",
    "volumes",
];

fn workload_spec(f: Field<'_>) -> Result<(ModuleRef, Mark, DeployRequest)> {
    let mut spec = f.mapping()?;
    let (module_at, node) = spec.required("module", " (a .wasm file or sha256:HEX)")?;
    let module = module_ref(Field { node, at: module_at, path: "spec.module" })?;
    let mut r = crate::template::new_workload();
    if let Some((at, node)) = spec.take("replicas") {
        r.replicas = Field { node, at, path: "spec.replicas" }.whole()?;
    }
    if let Some((at, node)) = spec.take("nodeSelector") {
        r.selector = Field { node, at, path: "spec.nodeSelector" }.string_map()?;
    }
    if let Some((at, node)) = spec.take("resources") {
        let mut q = Field { node, at, path: "spec.resources" }.mapping()?;
        if let Some((at, node)) = q.take("cpu") {
            r.cpu_millis = cpu(Field { node, at, path: "spec.resources.cpu" })?;
        }
        if let Some((at, node)) = q.take("memory") {
            r.memory_bytes = memory(Field { node, at, path: "spec.resources.memory" })?;
        }
        q.finish(&["cpu", "memory"])?;
    }
    if let Some((at, node)) = spec.take("limits") {
        let mut q = Field { node, at, path: "spec.limits" }.mapping()?;
        if let Some((at, node)) = q.take("cpu") {
            r.cpu_limit_millis = Some(cpu(Field { node, at, path: "spec.limits.cpu" })?);
        }
        if let Some((at, node)) = q.take("memory") {
            r.memory_limit_bytes = Some(memory(Field { node, at, path: "spec.limits.memory" })?);
        }
        q.finish(&["cpu", "memory"])?;
    }
    if let Some((at, node)) = spec.take("env") {
        r.env = env(Field { node, at, path: "spec.env" })?;
    }
    if let Some((at, node)) = spec.take("args") {
        for (item, path) in (Field { node, at, path: "spec.args" }).list()? {
            r.args.push(Field { node: &item, at: item.at, path: &path }.string()?);
        }
    }
    if let Some((at, node)) = spec.take("restartPolicy") {
        r.restart = Some(word(Field { node, at, path: "spec.restartPolicy" }, &RESTART_POLICIES)?);
    }
    if let Some((at, node)) = spec.take("onNodeLoss") {
        r.on_node_loss = Some(word(Field { node, at, path: "spec.onNodeLoss" }, &NODE_LOSS_POLICIES)?);
    }
    if let Some((at, node)) = spec.take("timeout") {
        let f = Field { node, at, path: "spec.timeout" };
        let text = f.string()?;
        let ms = parse_duration_ms(&text)
            .map_err(|_| f.error(format!("{text:?} is not a duration (examples: 500ms, 30s, 5m)")))?;
        r.timeout_ms = Some(ms);
    }
    if let Some((at, node)) = spec.take("volumes") {
        r.volumes = volumes(Field { node, at, path: "spec.volumes" })?;
    }
    spec.finish(&SPEC_FIELDS)?;
    Ok((module, module_at, crate::template::normalize(r)))
}

fn module_ref(f: Field<'_>) -> Result<ModuleRef> {
    let text = f.string()?;
    let is_sha = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(hex) = text.strip_prefix("sha256:") {
        if !is_sha(hex) {
            return Err(f.error(format!("{text:?}: a sha256 is 64 hex digits")));
        }
        return Ok(ModuleRef::Sha256(hex.to_ascii_lowercase()));
    }
    if is_sha(&text) {
        return Ok(ModuleRef::Sha256(text.to_ascii_lowercase()));
    }
    if text.trim().is_empty() {
        return Err(f.error("is empty (a .wasm file or sha256:HEX)"));
    }
    Ok(ModuleRef::Path(text))
}

/// `env` as Kubernetes writes it: a list of `{name, value}`.
fn env(f: Field<'_>) -> Result<Vec<(String, String)>> {
    if matches!(f.node.value, Value::Map(_)) {
        return Err(f.error("expected a list of {name, value} (as in Kubernetes), found a mapping"));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for (item, path) in f.list()? {
        let mut entry = Fields::of(&item, item.at, &path)?;
        let name_path = format!("{path}.name");
        let (at, node) = entry.required("name", "")?;
        let name_field = Field { node, at, path: &name_path };
        let name = name_field.string()?;
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(name_field.error(format!("{name:?} is not a variable name")));
        }
        if out.iter().any(|(k, _)| *k == name) {
            return Err(name_field.error(format!("{name} is set twice")));
        }
        let value_path = format!("{path}.value");
        let value = match entry.take("value") {
            Some((at, node)) => Field { node, at, path: &value_path }.string()?,
            None => String::new(),
        };
        entry.finish(&["name", "value"])?;
        out.push((name, value));
    }
    Ok(out)
}

/// `volumes`: a list of `{name, size}`.
fn volumes(f: Field<'_>) -> Result<Vec<VolumeSpec>> {
    let mut out: Vec<VolumeSpec> = Vec::new();
    for (item, path) in f.list()? {
        let mut entry = Fields::of(&item, item.at, &path)?;
        let name_path = format!("{path}.name");
        let (at, node) = entry.required("name", "")?;
        let name_field = Field { node, at, path: &name_path };
        let name = valid_name(name_field)?;
        if out.iter().any(|v| v.name == name) {
            return Err(name_field.error(format!("volume {name} is declared twice")));
        }
        let size_path = format!("{path}.size");
        let (at, node) = entry.required("size", " (e.g. 16Mi)")?;
        let size_field = Field { node, at, path: &size_path };
        let size_bytes = memory(size_field)?;
        if size_bytes == 0 {
            return Err(size_field.error("must be more than 0"));
        }
        entry.finish(&["name", "size"])?;
        out.push(VolumeSpec { name, size_bytes });
    }
    Ok(out)
}

fn namespace_spec(f: Field<'_>) -> Result<Quota> {
    let mut spec = f.mapping()?;
    let mut quota = Quota::default();
    if let Some((at, node)) = spec.take("quota") {
        let mut q = Field { node, at, path: "spec.quota" }.mapping()?;
        if let Some((at, node)) = q.take("cpu") {
            quota.cpu_millis = Some(cpu(Field { node, at, path: "spec.quota.cpu" })?.into());
        }
        if let Some((at, node)) = q.take("memory") {
            quota.memory_bytes = Some(memory(Field { node, at, path: "spec.quota.memory" })?);
        }
        if let Some((at, node)) = q.take("instances") {
            quota.instances = Some(Field { node, at, path: "spec.quota.instances" }.whole()?);
        }
        q.finish(&["cpu", "memory", "instances"])?;
    }
    spec.finish(&["quota"])?;
    Ok(quota)
}

#[cfg(test)]
mod tests;
