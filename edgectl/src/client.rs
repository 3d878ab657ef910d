//! A small typed client for the controller's HTTP/JSON API, in the shapes of `edge-api` (and nothing of the
//! controller's own crate).

use anyhow::{anyhow, Context, Result};
use edge_api::{
    AuditView, CredentialCreated, CredentialRequest, CredentialView, DeployRequest, DryRunView, ErrorBody, EventView,
    LabelRequest, LogsResponse, ModuleView, NamespaceRequest, NamespaceView, NodeDetail, NodeView, TokenCreated,
    TokenRequest, TokenView, VersionView, WorkloadView,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use crate::progress::Progress;

/// How much of a module goes out between two updates of its progress bar.
const UPLOAD_CHUNK: usize = 64 << 10;
/// The response header of `GET /v1/workloads` that names the next page.
const CONTINUE_HEADER: &str = "x-edge-continue";

pub struct Client {
    base: String,
    http: reqwest::Client,
    /// `Bearer …`, sent with every request when there is a token.
    authorization: Option<String>,
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

/// The last cause in `e`'s chain ("Connection refused (os error 111)"): what actually went wrong.
fn innermost(e: &reqwest::Error) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// The TLS failure under a request error (a certificate the pin refused, a failed handshake), if that is what it
/// is: its innermost message, which names the cluster and what was wrong.
fn tls_cause(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let mut found = None;
    while let Some(mut cause) = source {
        // rustls' error travels inside io::Errors (one in another), whose `source` skips it: look inside them.
        while let Some(inner) = cause.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            cause = inner;
        }
        if let Some(tls) = cause.downcast_ref::<edge_tls::rustls::Error>() {
            found = Some(match tls {
                edge_tls::rustls::Error::General(why) => why.clone(),
                other => other.to_string(),
            });
        }
        source = cause.source();
    }
    found
}

impl Client {
    /// A client of the controller at `server`: `http://HOST:PORT`, or `HOST:PORT` (http is assumed, as
    /// `edgectl dev` prints it).
    pub fn new(server: &str) -> Client {
        edge_tls::install_default_provider();
        Client { base: base_url(server), http: reqwest::Client::new(), authorization: None }
    }

    /// A client of `server` that, for an `https://` server, trusts only the cluster `ca` names (its fingerprint,
    /// `sha256:…`, or its CA file, `ca.crt`) and sends `token`.
    pub fn connect(server: &str, token: Option<String>, ca: Option<&str>) -> Result<Client> {
        let base = base_url(server);
        let mut client = Client::new(&base).with_token(token);
        if base.starts_with("https://") {
            let ca = ca.ok_or_else(|| {
                anyhow!(
                    "{base} speaks TLS: pin its cluster with --certificate-authority (the fingerprint the controller \
                     printed, sha256:…, or its ca.crt), or `edgectl config set-context NAME --certificate-authority FILE`"
                )
            })?;
            let pin = edge_tls::pin_from(ca).map_err(|e| anyhow!("--certificate-authority: {e}"))?;
            let tls = edge_tls::client_config(pin, &[b"http/1.1"]).map_err(|e| anyhow!("{e}"))?;
            client.http = reqwest::Client::builder()
                .use_preconfigured_tls((*tls).clone())
                .build()
                .map_err(|e| anyhow!("cannot set up TLS: {e}"))?;
        }
        Ok(client)
    }

    /// The same client, sending `token` as its bearer credential.
    pub fn with_token(mut self, token: Option<String>) -> Client {
        self.authorization = token.map(|t| format!("Bearer {t}"));
        self
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{}", self.base, path));
        match &self.authorization {
            Some(a) => rb.header(reqwest::header::AUTHORIZATION, a),
            None => rb,
        }
    }

    async fn send(&self, rb: RequestBuilder) -> Result<Response> {
        let resp = rb.send().await.map_err(|e| {
            if let Some(tls) = tls_cause(&e) {
                // A refused handshake is not an absent controller: say what the pin found.
                anyhow!("refused the controller at {}: {tls}", self.base)
            } else if e.is_connect() {
                let why = innermost(&e);
                anyhow!("cannot reach the controller at {} ({why}: is it running? `edgectl dev` starts one)", self.base)
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

    /// Every workload of `ns` (every namespace: `None`), following the controller's pages.
    pub async fn workloads(&self, ns: Option<&str>) -> Result<Vec<WorkloadView>> {
        self.workloads_paged(ns, None).await
    }

    /// [`Client::workloads`], asking for pages of `limit` (the controller's default: `None`). `GET
    /// /v1/workloads` answers one page and names the next in its [`CONTINUE_HEADER`] (a controller without
    /// pages answers everything, with no such header).
    async fn workloads_paged(&self, ns: Option<&str>, limit: Option<usize>) -> Result<Vec<WorkloadView>> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut rb = self.request(Method::GET, "/v1/workloads");
            if let Some(ns) = ns {
                rb = rb.query(&[("namespace", ns)]);
            }
            if let Some(limit) = limit {
                rb = rb.query(&[("limit", limit)]);
            }
            if let Some(t) = &token {
                rb = rb.query(&[("continue", t)]);
            }
            let resp = self.send(rb).await?;
            let next = match resp.headers().get(CONTINUE_HEADER) {
                Some(v) => Some(v.to_str().context("the controller sent an unreadable continue token")?.to_string()),
                None => None,
            };
            let page: Vec<WorkloadView> = resp.json().await.context("the controller sent an unreadable reply")?;
            // Each page must move on, or a confused controller would keep this loop going forever.
            if next.is_some() && (page.is_empty() || next == token) {
                return Err(anyhow!("the controller's workload list does not advance (continue token {next:?})"));
            }
            all.extend(page);
            match next {
                Some(t) => token = Some(t),
                None => return Ok(all),
            }
        }
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
    pub async fn create_credential(&self, req: &CredentialRequest) -> Result<CredentialCreated> {
        self.json(self.request(Method::POST, "/v1/credentials").json(req)).await
    }

    pub async fn credentials(&self) -> Result<Vec<CredentialView>> {
        self.json(self.request(Method::GET, "/v1/credentials")).await
    }

    pub async fn delete_credential(&self, name: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, &format!("/v1/credentials/{name}"))).await?;
        Ok(())
    }

    pub async fn audit(&self) -> Result<Vec<AuditView>> {
        self.json(self.request(Method::GET, "/v1/audit")).await
    }

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
    /// `workloads` follows the controller's pages to the end: a real in-process controller, pages of 2.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workloads_follow_every_page() {
        let f = edge_tests::Fleet::embedded().await;
        let sha = f.api.upload(edge_tests::example("ticker.wasm")).await;
        for name in ["e", "a", "d", "b", "c"] {
            f.api.deploy(name, &sha, 0).await;
        }
        let c = f.controller.as_ref().expect("a controller");
        let client = super::Client::new(&c.api_addr.to_string()).with_token(c.admin_token.clone());
        let names = |ws: Vec<edge_api::WorkloadView>| ws.into_iter().map(|w| w.name).collect::<Vec<_>>();
        let paged = client.workloads_paged(None, Some(2)).await.expect("every page");
        assert_eq!(names(paged), ["a", "b", "c", "d", "e"]);
        let whole = client.workloads(Some("default")).await.expect("one page");
        assert_eq!(names(whole), ["a", "b", "c", "d", "e"]);
        f.stop().await;
    }

    #[test]
    fn a_server_without_a_scheme_is_http() {
        assert_eq!(super::base_url("127.0.0.1:7700"), "http://127.0.0.1:7700");
        assert_eq!(super::base_url("http://127.0.0.1:7700/"), "http://127.0.0.1:7700");
        assert_eq!(super::base_url("https://ctl.local"), "https://ctl.local");
        assert_eq!(super::base_url("ctl.local:7700/"), "http://ctl.local:7700");
    }
}
