//! One module download as a pure state machine: which range to ask for next, whether a reply is accepted, when
//! the bytes are complete and verified, or why the download failed. No I/O and no clock: the core publishes
//! the requests, stores the bytes and passes `now` in.
//!
//! The controller serves `[offset, offset + len)` of the artifact built for this node's engine profile; every
//! chunk announces the whole artifact's sha256 and size. The bytes are kept only if they hash to the announced
//! sha256, which must be the same in every chunk, and (once a signed spec carries one) equal to the
//! `expected` hash the download was created with.
//!
//! **Invariants:**
//! - Nothing from the wire is trusted for arithmetic or allocation: offsets and totals are checked without
//!   overflow, the buffer never grows past [`Download::max`] (at most [`MAX_MODULE`]), and no capacity is
//!   reserved from an announced size.
//! - A failure resets the download to its start; it is asked for again after [`FETCH_STALL`], like a stalled one.

use std::time::Instant;

use edge_proto::timing::FETCH_STALL;
use edge_proto::{EngineProfile, EngineTarget, ModuleChunk, ModuleRequest, Sha256};
use sha2::Digest;

/// Largest module (artifact or WebAssembly) the agent downloads or loads from a manifest.
pub const MAX_MODULE: u64 = 64 * 1024 * 1024;

/// Why a download failed. Its `Display` is what instances waiting for the module report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("module not found on the controller")]
    NotFound,
    #[error("no artifact for this node: {0}")]
    Refused(String),
    #[error("artifact download refused: built for {}, this node runs {runs}", built_for_name(*built_for))]
    OtherProfile { built_for: Option<EngineTarget>, runs: EngineTarget },
    #[error("artifact download refused: {total} bytes, over the limit of {max}")]
    TooLarge { total: u64, max: u64 },
    #[error("artifact download refused: inconsistent or oversize chunk")]
    Inconsistent,
    #[error("artifact download refused: its announced hash changed mid-transfer")]
    HashChanged,
    #[error(
        "artifact download refused: it announced sha256 {}, the spec expects {}",
        hex::encode(announced),
        hex::encode(expected)
    )]
    Unexpected { announced: Sha256, expected: Sha256 },
    #[error("artifact download failed its sha256 check; retrying")]
    HashMismatch,
}

fn built_for_name(target: Option<EngineTarget>) -> &'static str {
    target.map_or("no engine (WebAssembly bytes)", EngineTarget::as_str)
}

/// What a reply did to the download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not at this download's position (a duplicate or a stale reply, or for another module): nothing changed.
    Ignored,
    /// Accepted; more is missing: ask for [`Download::next_request`].
    Accepted,
    /// Accepted but empty: no progress. Wait for the stall timer rather than spin.
    Empty,
    /// Complete and verified: the bytes to keep. The download is over.
    Done(Vec<u8>),
    /// Failed (and reset to its start); asked for again after [`FETCH_STALL`].
    Failed(Failure),
}

#[derive(Debug, Clone)]
pub struct Download {
    module: Sha256,
    profile: EngineProfile,
    /// The hash the bytes must have, when known before the first chunk (a signed spec).
    expected: Option<Sha256>,
    max: u64,
    /// The hash and size the first chunk announced; every later chunk must announce the same.
    announced: Option<(Sha256, u64)>,
    buf: Vec<u8>,
    /// The last request, accepted chunk or failure: the stall timer runs from it.
    last_activity: Instant,
}

impl Download {
    /// A download of `module`'s artifact for `profile`, whose bytes must hash to `expected` when given (else
    /// to whatever the first chunk announces), at most `max` bytes (capped at [`MAX_MODULE`]).
    pub fn new(module: Sha256, profile: EngineProfile, expected: Option<Sha256>, max: u64, now: Instant) -> Download {
        Download {
            module,
            profile,
            expected,
            max: max.min(MAX_MODULE),
            announced: None,
            buf: Vec::new(),
            last_activity: now,
        }
    }

    pub fn module(&self) -> Sha256 {
        self.module
    }

    /// The size bound of this download.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.buf.len() as u64
    }

    /// The request for the next missing range, sent at `now`.
    pub fn next_request(&mut self, now: Instant) -> ModuleRequest {
        self.last_activity = now;
        ModuleRequest {
            module: self.module,
            artifact: Some(self.profile),
            offset: self.received(),
            max_len: edge_proto::MODULE_CHUNK,
        }
    }

    /// Notes a request that could not be sent (no connection): the stall timer starts again from `now`.
    pub fn deferred(&mut self, now: Instant) {
        self.last_activity = now;
    }

    /// The request to send again when nothing happened for [`FETCH_STALL`] (a lost request or reply, a
    /// controller still compiling, a failure to retry).
    pub fn re_ask(&mut self, now: Instant) -> Option<ModuleRequest> {
        (now.saturating_duration_since(self.last_activity) >= FETCH_STALL).then(|| self.next_request(now))
    }

    /// The controller has no such module.
    pub fn not_found(&mut self, now: Instant) -> Failure {
        self.fail(Failure::NotFound, now)
    }

    /// The controller refused to build an artifact for `artifact`; only a refusal for our profile counts.
    pub fn refused(&mut self, artifact: Option<EngineProfile>, reason: &str, now: Instant) -> Option<Failure> {
        (artifact == Some(self.profile)).then(|| self.fail(Failure::Refused(reason.to_string()), now))
    }

    /// Takes a chunk of this module's artifact.
    pub fn on_chunk(&mut self, chunk: ModuleChunk, now: Instant) -> Progress {
        if chunk.module != self.module || chunk.offset != self.received() {
            return Progress::Ignored; // A duplicate or a stale reply; the matching one is (re)requested.
        }
        if let Err(why) = self.check(&chunk) {
            return Progress::Failed(self.fail(why, now));
        }
        self.announced = Some((chunk.sha256, chunk.total));
        self.last_activity = now;
        if chunk.data.is_empty() && self.received() < chunk.total {
            return Progress::Empty;
        }
        self.buf.extend_from_slice(&chunk.data);
        if self.received() < chunk.total {
            return Progress::Accepted;
        }
        let actual: Sha256 = sha2::Sha256::digest(&self.buf).into();
        if actual != chunk.sha256 {
            return Progress::Failed(self.fail(Failure::HashMismatch, now));
        }
        self.announced = None;
        Progress::Done(std::mem::take(&mut self.buf))
    }

    /// Whether `chunk` (at our offset) may be appended.
    fn check(&self, chunk: &ModuleChunk) -> Result<(), Failure> {
        if chunk.artifact != Some(self.profile) {
            let built_for = chunk.artifact.map(|p| p.target);
            return Err(Failure::OtherProfile { built_for, runs: self.profile.target });
        }
        if chunk.total > self.max {
            return Err(Failure::TooLarge { total: chunk.total, max: self.max });
        }
        let end = chunk.offset.checked_add(chunk.data.len() as u64).ok_or(Failure::Inconsistent)?;
        if end > chunk.total {
            return Err(Failure::Inconsistent);
        }
        match self.announced {
            Some((sha, _)) if sha != chunk.sha256 => return Err(Failure::HashChanged),
            Some((_, total)) if total != chunk.total => return Err(Failure::Inconsistent),
            _ => {}
        }
        match self.expected {
            Some(expected) if expected != chunk.sha256 => {
                Err(Failure::Unexpected { announced: chunk.sha256, expected })
            }
            _ => Ok(()),
        }
    }

    fn fail(&mut self, why: Failure, now: Instant) -> Failure {
        self.buf = Vec::new();
        self.announced = None;
        self.last_activity = now;
        why
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn profile(target: EngineTarget) -> EngineProfile {
        edge_engine::profile_for(target, 1 << 30)
    }

    fn sha(bytes: &[u8]) -> Sha256 {
        sha2::Sha256::digest(bytes).into()
    }

    const MODULE: Sha256 = [9; 32];

    /// The chunk of `bytes` at `[offset, offset + len)`, as an honest controller sends it.
    fn chunk(bytes: &[u8], offset: usize, len: usize, p: EngineProfile) -> ModuleChunk {
        let end = (offset + len).min(bytes.len());
        ModuleChunk {
            module: MODULE,
            artifact: Some(p),
            sha256: sha(bytes),
            offset: offset as u64,
            total: bytes.len() as u64,
            data: bytes[offset..end].to_vec(),
        }
    }

    #[test]
    fn asks_range_after_range_and_keeps_bytes_that_match_their_hash() {
        let p = profile(EngineTarget::Pulley64);
        let t0 = Instant::now();
        let bytes: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut d = Download::new(MODULE, p, None, MAX_MODULE, t0);
        let r = d.next_request(t0);
        assert_eq!((r.module, r.artifact, r.offset), (MODULE, Some(p), 0));
        assert_eq!(d.on_chunk(chunk(&bytes, 0, 400, p), t0), Progress::Accepted);
        assert_eq!(d.next_request(t0).offset, 400);
        assert_eq!(d.on_chunk(chunk(&bytes, 0, 400, p), t0), Progress::Ignored, "a duplicate");
        assert_eq!(d.on_chunk(chunk(&bytes, 800, 400, p), t0), Progress::Ignored, "not where we are");
        assert_eq!(d.on_chunk(chunk(&bytes, 400, 0, p), t0), Progress::Empty);
        assert_eq!(d.on_chunk(chunk(&bytes, 400, 400, p), t0), Progress::Accepted);
        assert_eq!(d.on_chunk(chunk(&bytes, 800, 400, p), t0), Progress::Done(bytes.clone()));
        // An empty artifact is complete at once.
        let mut d = Download::new(MODULE, p, None, MAX_MODULE, t0);
        assert_eq!(d.on_chunk(chunk(&[], 0, 0, p), t0), Progress::Done(vec![]));
    }

    #[test]
    fn a_stalled_download_is_asked_for_again_after_fetch_stall() {
        let p = profile(EngineTarget::Pulley64);
        let t0 = Instant::now();
        let mut d = Download::new(MODULE, p, None, MAX_MODULE, t0);
        d.next_request(t0);
        assert_eq!(d.re_ask(t0 + FETCH_STALL - Duration::from_millis(1)), None);
        let again = d.re_ask(t0 + FETCH_STALL).expect("stalled");
        assert_eq!(again.offset, 0);
        // The re-ask restarts the timer; so does a chunk and a request deferred while offline.
        assert_eq!(d.re_ask(t0 + FETCH_STALL + Duration::from_secs(1)), None);
        d.deferred(t0 + FETCH_STALL * 3);
        assert_eq!(d.re_ask(t0 + FETCH_STALL * 3 + Duration::from_secs(1)), None);
    }

    #[test]
    fn bad_chunks_fail_with_why_and_reset_the_download() {
        let p = profile(EngineTarget::Pulley64);
        let t0 = Instant::now();
        let bytes = vec![7u8; 1000];
        let fresh = || Download::new(MODULE, p, None, 2000, t0);

        let mut d = fresh();
        let other = profile(EngineTarget::Pulley32);
        let why = d.on_chunk(chunk(&bytes, 0, 10, other), t0);
        assert_eq!(why, Progress::Failed(Failure::OtherProfile { built_for: Some(other.target), runs: p.target }));
        let Progress::Failed(why) = why else { unreachable!() };
        assert!(why.to_string().starts_with("artifact download refused: built for pulley32"), "{why}");
        let mut wasm = chunk(&bytes, 0, 10, p);
        wasm.artifact = None;
        let Progress::Failed(why) = d.on_chunk(wasm, t0) else { panic!() };
        assert!(why.to_string().contains("no engine (WebAssembly bytes)"), "{why}");

        let mut d = fresh();
        assert_eq!(d.on_chunk(chunk(&bytes, 0, 500, p), t0), Progress::Accepted);
        let mut changed = chunk(&bytes, 500, 500, p);
        changed.sha256 = [1; 32];
        assert_eq!(d.on_chunk(changed, t0), Progress::Failed(Failure::HashChanged));
        assert_eq!(d.received(), 0, "a failure starts over");
        assert_eq!(d.re_ask(t0 + FETCH_STALL).map(|r| r.offset), Some(0));

        let mut d = fresh();
        let mut lying = chunk(&bytes, 0, 1000, p);
        lying.sha256 = [2; 32];
        assert_eq!(d.on_chunk(lying, t0), Progress::Failed(Failure::HashMismatch));

        let mut d = fresh();
        assert_eq!(d.not_found(t0), Failure::NotFound);
        assert_eq!(d.refused(Some(other), "x", t0), None, "a refusal for another profile is not ours");
        assert_eq!(d.refused(Some(p), "no backend", t0), Some(Failure::Refused("no backend".into())));
    }

    #[test]
    fn wire_values_never_overflow_or_allocate_past_the_bound() {
        let p = profile(EngineTarget::Pulley64);
        let t0 = Instant::now();
        let mut d = Download::new(MODULE, p, None, u64::MAX, t0);
        assert_eq!(d.max(), MAX_MODULE, "the bound is capped");
        let mut huge = chunk(&[1; 10], 0, 10, p);
        huge.total = u64::MAX;
        assert_eq!(d.on_chunk(huge, t0), Progress::Failed(Failure::TooLarge { total: u64::MAX, max: MAX_MODULE }));
        // More data than the total it announces.
        let mut over = chunk(&[1; 10], 0, 10, p);
        over.total = 5;
        assert_eq!(d.on_chunk(over, t0), Progress::Failed(Failure::Inconsistent));
        // A total that changes mid-transfer.
        let bytes = vec![3u8; 100];
        assert_eq!(d.on_chunk(chunk(&bytes, 0, 50, p), t0), Progress::Accepted);
        let mut grown = chunk(&bytes, 50, 50, p);
        grown.total = 1000;
        assert_eq!(d.on_chunk(grown, t0), Progress::Failed(Failure::Inconsistent));
        // An offset at u64::MAX never matches our position; at our position it cannot overflow either.
        let mut far = chunk(&bytes, 0, 10, p);
        far.offset = u64::MAX;
        assert_eq!(d.on_chunk(far, t0), Progress::Ignored);
        let mut d = Download::new(MODULE, p, None, 100, t0);
        assert_eq!(d.on_chunk(chunk(&bytes, 0, 100, p), t0), Progress::Done(bytes.clone()));
        let mut d = Download::new(MODULE, p, None, 99, t0);
        assert!(matches!(d.on_chunk(chunk(&bytes, 0, 100, p), t0), Progress::Failed(Failure::TooLarge { .. })));
    }

    #[test]
    fn an_expected_hash_must_be_the_announced_one() {
        let p = profile(EngineTarget::Pulley64);
        let t0 = Instant::now();
        let bytes = vec![5u8; 64];
        let mut d = Download::new(MODULE, p, Some(sha(&bytes)), MAX_MODULE, t0);
        assert_eq!(d.on_chunk(chunk(&bytes, 0, 64, p), t0), Progress::Done(bytes.clone()));
        let mut d = Download::new(MODULE, p, Some([4; 32]), MAX_MODULE, t0);
        let why = d.on_chunk(chunk(&bytes, 0, 64, p), t0);
        assert_eq!(why, Progress::Failed(Failure::Unexpected { announced: sha(&bytes), expected: [4; 32] }));
    }
}
