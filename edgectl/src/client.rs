//! A small typed client for the controller's HTTP/JSON API, in the shapes of `edge-api` (and nothing of the
//! controller's own crate).

use anyhow::{anyhow, Context, Result};
use edge_api::{
    DeployRequest, DryRunView, ErrorBody, EventView, LabelRequest, LogsResponse, ModuleView, NamespaceRequest,
    NamespaceView, NodeDetail, NodeView, TokenCreated, TokenRequest, TokenView, VersionView, WorkloadView,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use crate::progress::Progress;

/// How much of a module goes out between two updates of its progress bar.
const UPLOAD_CHUNK: usize = 64 << 10;

pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// A refusal by the controller (4xx/5xx), with its message.
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refused {}

impl Client {
    /// A client of the controller at `server`: `http://HOST:PORT`, or `HOST:PORT` (http is assumed, as
    /// `edgectl dev` prints it).
    pub fn new(server: &str) -> Client {
        Client { base: base_url(server), http: reqwest::Client::new() }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{}", self.base, path))
    }

    async fn send(&self, rb: RequestBuilder) -> Result<Response> {
        let resp = rb.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow!("cannot reach the controller at {} (is it running? `edgectl dev` starts one)", self.base)
            } else {
                anyhow!("request to the controller at {} failed: {e}", self.base)
            }
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text).map(|b| b.error).unwrap_or(text);
        Err(Refused { status, message }.into())
    }

    async fn json<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T> {
        self.send(rb).await?.json().await.context("the controller sent an unreadable reply")
    }

    /// A GET whose 404 means "none" rather than an error.
    async fn optional<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        match self.json(self.request(Method::GET, path)).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.downcast_ref::<Refused>().is_some_and(|r| r.status == StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn module(&self, sha: &str) -> Result<Option<ModuleView>> {
        self.optional(&format!("/v1/modules/{sha}")).await
    }

    pub async fn modules(&self) -> Result<Vec<ModuleView>> {
        self.json(self.request(Method::GET, "/v1/modules")).await
    }

    /// Uploads a module in chunks, advancing `progress` by each chunk's bytes as it is sent.
    pub async fn upload_module(&self, bytes: Vec<u8>, progress: Progress) -> Result<ModuleView> {
        let len = bytes.len();
        let chunks: Vec<Vec<u8>> = bytes.chunks(UPLOAD_CHUNK).map(<[u8]>::to_vec).collect();
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks.into_iter().map(move |c| {
            progress.advance(c.len() as u64);
            Ok::<_, std::io::Error>(c)
        })));
        // With its length the request is not chunked (as a plain body would be sent).
        let rb = self.request(Method::POST, "/v1/modules").header(reqwest::header::CONTENT_LENGTH, len).body(body);
        self.json(rb).await
    }

    pub async fn deploy(&self, ns: &str, name: &str, req: &DeployRequest) -> Result<WorkloadView> {
        self.json(self.request(Method::PUT, &format!("/v1/namespaces/{ns}/workloads/{name}")).json(req)).await
    }

    /// Every check of [`Client::deploy`], nothing stored.
    pub async fn deploy_dry_run(&self, ns: &str, name: &str, req: &DeployRequest) -> Result<DryRunView> {
        let path = format!("/v1/namespaces/{ns}/workloads/{name}");
        self.json(self.request(Method::PUT, &path).query(&[("dry_run", "true")]).json(req)).await
    }

    pub async fn workload(&self, ns: &str, name: &str) -> Result<WorkloadView> {
        self.json(self.request(Method::GET, &format!("/v1/namespaces/{ns}/workloads/{name}"))).await
    }

    /// The workload, or none when it does not exist (yet).
    pub async fn find_workload(&self, ns: &str, name: &str) -> Result<Option<WorkloadView>> {
        self.optional(&format!("/v1/namespaces/{ns}/workloads/{name}")).await
    }

    pub async fn workloads(&self, ns: Option<&str>) -> Result<Vec<WorkloadView>> {
        let mut rb = self.request(Method::GET, "/v1/workloads");
        if let Some(ns) = ns {
            rb = rb.query(&[("namespace", ns)]);
        }
        self.json(rb).await
    }

    pub async fn nodes(&self) -> Result<Vec<NodeView>> {
        self.json(self.request(Method::GET, "/v1/nodes")).await
    }

    pub async fn node(&self, name: &str) -> Result<NodeDetail> {
        self.json(self.request(Method::GET, &format!("/v1/nodes/{name}"))).await
    }

    /// Creates a namespace or sets its quota; true when it was created.
    pub async fn put_namespace(&self, ns: &str, req: &NamespaceRequest) -> Result<(NamespaceView, bool)> {
        let resp = self.send(self.request(Method::PUT, &format!("/v1/namespaces/{ns}")).json(req)).await?;
        let created = resp.status() == StatusCode::CREATED;
        Ok((resp.json().await.context("the controller sent an unreadable reply")?, created))
    }

    /// Every check of [`Client::put_namespace`], nothing stored.
    pub async fn namespace_dry_run(&self, ns: &str, req: &NamespaceRequest) -> Result<DryRunView> {
        let rb = self.request(Method::PUT, &format!("/v1/namespaces/{ns}")).query(&[("dry_run", "true")]).json(req);
        self.json(rb).await
    }

    pub async fn namespaces(&self) -> Result<Vec<NamespaceView>> {
        self.json(self.request(Method::GET, "/v1/namespaces")).await
    }

    pub async fn undo(&self, ns: &str, name: &str, to: Option<u64>) -> Result<WorkloadView> {
        let mut rb = self.request(Method::POST, &format!("/v1/namespaces/{ns}/workloads/{name}/undo"));
        if let Some(r) = to {
            rb = rb.query(&[("to_revision", r)]);
        }
        self.json(rb).await
    }

    pub async fn workload_events(&self, ns: &str, name: &str) -> Result<Vec<String>> {
        self.json(self.request(Method::GET, &format!("/v1/namespaces/{ns}/workloads/{name}/events"))).await
    }

    pub async fn node_op(&self, name: &str, op: &str) -> Result<NodeView> {
        self.json(self.request(Method::POST, &format!("/v1/nodes/{name}/{op}"))).await
    }

    pub async fn label(&self, name: &str, req: &LabelRequest) -> Result<NodeView> {
        self.json(self.request(Method::PUT, &format!("/v1/nodes/{name}/labels")).json(req)).await
    }

    pub async fn delete(&self, ns: &str, name: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, &format!("/v1/namespaces/{ns}/workloads/{name}"))).await?;
        Ok(())
    }

    /// Removes a node: the controller revokes its credentials and moves its instances per their policy. Refused
    /// (409) while the node is Ready, unless `force`.
    pub async fn delete_node(&self, name: &str, force: bool) -> Result<()> {
        let mut rb = self.request(Method::DELETE, &format!("/v1/nodes/{name}"));
        if force {
            rb = rb.query(&[("force", "true")]);
        }
        self.send(rb).await?;
        Ok(())
    }

    /// A new join token; its secret is in the answer only.
    pub async fn create_token(&self, req: &TokenRequest) -> Result<TokenCreated> {
        self.json(self.request(Method::POST, "/v1/tokens").json(req)).await
    }

    pub async fn tokens(&self) -> Result<Vec<TokenView>> {
        self.json(self.request(Method::GET, "/v1/tokens")).await
    }

    pub async fn delete_token(&self, id: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, &format!("/v1/tokens/{id}"))).await?;
        Ok(())
    }

    /// Recent lifecycle events, oldest first: of namespace `ns` (every namespace: `None`), or of one object
    /// (`workload/NAME`, `node/NAME`, `instance/ID`).
    pub async fn top_nodes(&self) -> Result<Vec<edge_api::NodeTopView>> {
        self.json(self.request(Method::GET, "/v1/top/nodes")).await
    }

    /// Reported usage of the instances of `ns` (every namespace: `None`).
    pub async fn top_instances(&self, ns: Option<&str>) -> Result<Vec<edge_api::InstanceTopView>> {
        let mut rb = self.request(Method::GET, "/v1/top/instances");
        if let Some(ns) = ns {
            rb = rb.query(&[("namespace", ns)]);
        }
        self.json(rb).await
    }

    pub async fn events(&self, ns: Option<&str>, about: Option<&str>) -> Result<Vec<EventView>> {
        let mut rb = self.request(Method::GET, "/v1/events");
        if let Some(ns) = ns {
            rb = rb.query(&[("namespace", ns)]);
        }
        if let Some(about) = about {
            rb = rb.query(&[("for", about)]);
        }
        self.json(rb).await
    }

    /// The controller's version; `None` from a controller too old to say.
    pub async fn version(&self) -> Result<Option<VersionView>> {
        self.optional("/v1/version").await
    }

    pub async fn logs(&self, ns: &str, name: &str, since: u64) -> Result<LogsResponse> {
        let rb =
            self.request(Method::GET, &format!("/v1/namespaces/{ns}/workloads/{name}/logs")).query(&[("since", since)]);
        self.json(rb).await
    }
}

/// `server` with a scheme (`http://` when it has none) and no trailing slash.
pub fn base_url(server: &str) -> String {
    let server = server.trim().trim_end_matches('/');
    if server.contains("://") {
        server.to_string()
    } else {
        format!("http://{server}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_server_without_a_scheme_is_http() {
        assert_eq!(super::base_url("127.0.0.1:7700"), "http://127.0.0.1:7700");
        assert_eq!(super::base_url("http://127.0.0.1:7700/"), "http://127.0.0.1:7700");
        assert_eq!(super::base_url("https://ctl.local"), "https://ctl.local");
        assert_eq!(super::base_url("ctl.local:7700/"), "http://ctl.local:7700");
    }
}
