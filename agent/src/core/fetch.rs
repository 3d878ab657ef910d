//! Module delivery on the agent's side: one [`Download`] per module some instance waits for, driven by the
//! controller's replies and the heartbeat tick; a verified module is stored and its instances started.

use std::time::Instant;

use edge_proto::{Channel, EventKind, Message, ModuleReply, Sha256};

use super::Core;
use crate::clock::now_ms;
use crate::download::{Download, Progress, MAX_MODULE};
use crate::mail::Qos;

impl Core {
    pub(super) fn ensure_fetch(&mut self, sha: Sha256) {
        if self.fetches.contains_key(&sha) {
            return;
        }
        // The hash every chunk announces is checked against the cluster's signed statement first (a joined
        // node, see `on_module_reply`), so the download needs none of its own.
        let download = Download::new(sha, self.runtime.profile(), None, MAX_MODULE, Instant::now());
        self.fetches.insert(sha, download);
        self.request_chunk(sha);
    }

    pub(super) fn request_chunk(&mut self, sha: Sha256) {
        let connected = self.is_connected();
        let Some(d) = self.fetches.get_mut(&sha) else { return };
        if !connected {
            d.deferred(Instant::now());
            return;
        }
        let req = d.next_request(Instant::now());
        self.publish(Channel::ModuleRequest, Qos::AtLeastOnce, Message::ModuleRequest(req));
    }

    pub(super) fn on_module_reply(&mut self, reply: ModuleReply, auth: Option<&[u8]>) {
        let now = Instant::now();
        match reply {
            ModuleReply::NotFound { module } => {
                if let Some(d) = self.fetches.get_mut(&module) {
                    let why = d.not_found(now);
                    self.fail_waiting(module, &why.to_string());
                }
            }
            ModuleReply::Refused { module, artifact, reason } => {
                let why = self.fetches.get_mut(&module).and_then(|d| d.refused(artifact, &reason, now));
                if let Some(why) = why {
                    self.fail_waiting(module, &why.to_string());
                }
            }
            ModuleReply::Chunk(chunk) => {
                if let Err(r) = self.verifier.chunk(&chunk, auth) {
                    // Not a failure of the download: the honest chunk may still come.
                    return self.reject(r);
                }
                let sha = chunk.module;
                let Some(d) = self.fetches.get_mut(&sha) else { return };
                match d.on_chunk(chunk, now) {
                    Progress::Ignored | Progress::Empty => {}
                    Progress::Accepted => self.request_chunk(sha),
                    Progress::Failed(why) => self.fail_waiting(sha, &why.to_string()),
                    Progress::Done(bytes) => self.on_downloaded(sha, &bytes),
                }
            }
        }
    }

    /// A verified module arrived: store it and start what waited for it.
    fn on_downloaded(&mut self, sha: Sha256, bytes: &[u8]) {
        if let Err(e) = self.store.put_module(&sha, bytes, now_ms()) {
            // Keep the download (reset): it is asked for again after FETCH_STALL.
            tracing::error!(error = %e, "cannot store a downloaded module");
            self.fail_waiting(sha, &format!("cannot store the module: {e}"));
            return;
        }
        self.fetches.remove(&sha);
        self.evict_modules();
        let waiting: Vec<String> = self
            .instances
            .iter()
            .filter(|(_, i)| i.waiting_module && i.spec.module == sha)
            .map(|(id, _)| id.clone())
            .collect();
        for id in waiting {
            self.start(&id);
        }
    }

    /// Reports instances waiting for `sha` as failed; the download is retried after [`FETCH_STALL`].
    fn fail_waiting(&mut self, sha: Sha256, reason: &str) {
        let waiting: Vec<(String, u32)> = self
            .instances
            .iter_mut()
            .filter(|(_, i)| i.waiting_module && i.spec.module == sha)
            .map(|(id, i)| {
                i.sup.waiting(reason);
                (id.clone(), i.sup.restarts)
            })
            .collect();
        for (id, restarts) in waiting {
            self.event(&id, restarts, EventKind::Failed { reason: reason.to_string() });
        }
    }
}
