//! Persistence over [`Storage`]: the identity and the state (last verified spec + the modules it needs), each
//! in an A/B pair of slots in the layout of [`crate::record`]. Bodies are streamed through a small buffer and
//! hashed on the way, so a module is never held twice in RAM.

use alloc::vec;
use alloc::vec::Vec;

use edge_proto::{NodeSpec, Sha256};
use sha2::{Digest, Sha256 as Hasher};

use crate::platform::{Slot, Storage};
use crate::record::{newest, Header, IdentityRecord, Kind, HEADER_LEN};

/// Bytes moved per flash read or write.
const CHUNK: usize = 256;

/// Why persisting or loading failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError<E> {
    Flash(E),
    /// The record does not fit a slot.
    TooLarge {
        need: usize,
        slot: usize,
    },
}

impl<E: core::fmt::Debug> core::fmt::Display for StoreError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StoreError::Flash(e) => write!(f, "flash error: {e:?}"),
            StoreError::TooLarge { need, slot } => write!(f, "{need} bytes do not fit a slot of {slot}"),
        }
    }
}

/// A module kept in the state slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredModule {
    pub sha256: Sha256,
    /// Where its bytes start in `slot`.
    pub slot: Slot,
    pub offset: usize,
    pub len: usize,
}

/// The persisted state as loaded: the spec and signature in RAM, modules left in flash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub spec: NodeSpec,
    pub signature: Option<[u8; 64]>,
    pub modules: Vec<StoredModule>,
}

/// Where a module of a new state record comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Flash(StoredModule),
    Ram(Sha256, &'a [u8]),
}

impl Source<'_> {
    fn sha256(&self) -> Sha256 {
        match self {
            Source::Flash(m) => m.sha256,
            Source::Ram(sha, _) => *sha,
        }
    }
    fn len(&self) -> usize {
        match self {
            Source::Flash(m) => m.len,
            Source::Ram(_, b) => b.len(),
        }
    }
}

/// The pair of slots of `kind` and the sequence numbers of their current records.
pub struct Pairs {
    identity_seq: Option<(usize, u32)>,
    state_seq: Option<(usize, u32)>,
}

fn pair(kind: Kind) -> [Slot; 2] {
    match kind {
        Kind::Identity => [Slot::IdentityA, Slot::IdentityB],
        Kind::State => [Slot::StateA, Slot::StateB],
    }
}

/// The core's view of its flash.
pub struct Store<S: Storage> {
    pub storage: S,
    pairs: Pairs,
}

impl<S: Storage> Store<S> {
    pub fn new(storage: S) -> Store<S> {
        Store { storage, pairs: Pairs { identity_seq: None, state_seq: None } }
    }

    /// The valid record of `kind` with the highest sequence number: its slot index in the pair and header.
    async fn current(&mut self, kind: Kind) -> Result<Option<(usize, Header)>, StoreError<S::Error>> {
        let slots = pair(kind);
        let mut found = [None, None];
        for (i, slot) in slots.iter().enumerate() {
            let mut raw = [0u8; HEADER_LEN];
            self.storage.read(*slot, 0, &mut raw).await.map_err(StoreError::Flash)?;
            let Some(h) = Header::parse(&raw, kind, self.storage.slot_len()) else { continue };
            // Only a body that hashes to its header counts: a cut write is no record.
            let mut hasher = Hasher::new();
            let mut buf = [0u8; CHUNK];
            let mut at = 0usize;
            while at < h.len as usize {
                let n = CHUNK.min(h.len as usize - at);
                self.storage.read(*slot, HEADER_LEN + at, &mut buf[..n]).await.map_err(StoreError::Flash)?;
                hasher.update(&buf[..n]);
                at += n;
            }
            if <[u8; 32]>::from(hasher.finalize()) == h.sha256 {
                found[i] = Some(h);
            }
        }
        let [a, b] = found;
        Ok(newest(a, b))
    }

    async fn read_body(&mut self, slot: Slot, len: usize) -> Result<Vec<u8>, StoreError<S::Error>> {
        let mut body = vec![0u8; len];
        for (i, chunk) in body.chunks_mut(CHUNK).enumerate() {
            self.storage.read(slot, HEADER_LEN + i * CHUNK, chunk).await.map_err(StoreError::Flash)?;
        }
        Ok(body)
    }

    pub async fn load_identity(&mut self) -> Result<Option<IdentityRecord>, StoreError<S::Error>> {
        let Some((i, h)) = self.current(Kind::Identity).await? else { return Ok(None) };
        self.pairs.identity_seq = Some((i, h.seq));
        let body = self.read_body(pair(Kind::Identity)[i], h.len as usize).await?;
        Ok(postcard::from_bytes(&body).ok())
    }

    pub async fn save_identity(&mut self, record: &IdentityRecord) -> Result<(), StoreError<S::Error>> {
        let body = postcard::to_allocvec(record).unwrap_or_default();
        let (slot, seq) = next(self.pairs.identity_seq, Kind::Identity);
        self.write_record(slot, Kind::Identity, seq, &[&body], &[]).await?;
        self.pairs.identity_seq = Some((index(slot), seq));
        Ok(())
    }

    /// The persisted state, if a valid one exists and decodes.
    pub async fn load_state(&mut self) -> Result<Option<State>, StoreError<S::Error>> {
        let Some((i, h)) = self.current(Kind::State).await? else { return Ok(None) };
        self.pairs.state_seq = Some((i, h.seq));
        let slot = pair(Kind::State)[i];
        let mut word = [0u8; 4];
        self.storage.read(slot, HEADER_LEN, &mut word).await.map_err(StoreError::Flash)?;
        let spec_len = u32::from_le_bytes(word) as usize;
        if spec_len > h.len as usize {
            return Ok(None);
        }
        let mut head = vec![0u8; 4 + spec_len + 1 + 64 + 2];
        if head.len() > h.len as usize {
            return Ok(None);
        }
        for (k, chunk) in head.chunks_mut(CHUNK).enumerate() {
            self.storage.read(slot, HEADER_LEN + k * CHUNK, chunk).await.map_err(StoreError::Flash)?;
        }
        let Ok(spec) = postcard::from_bytes::<NodeSpec>(&head[4..4 + spec_len]) else { return Ok(None) };
        let at = 4 + spec_len;
        let signature = (head[at] == 1).then(|| {
            let mut s = [0u8; 64];
            s.copy_from_slice(&head[at + 1..at + 65]);
            s
        });
        let count = u16::from_le_bytes([head[at + 65], head[at + 66]]);
        let mut offset = HEADER_LEN + head.len();
        let end = HEADER_LEN + h.len as usize;
        let mut modules = Vec::new();
        for _ in 0..count {
            let mut entry = [0u8; 36];
            if offset + 36 > end {
                return Ok(None);
            }
            self.storage.read(slot, offset, &mut entry).await.map_err(StoreError::Flash)?;
            let mut sha256 = [0u8; 32];
            sha256.copy_from_slice(&entry[..32]);
            let len = u32::from_le_bytes([entry[32], entry[33], entry[34], entry[35]]) as usize;
            offset += 36;
            if offset.saturating_add(len) > end {
                return Ok(None);
            }
            modules.push(StoredModule { sha256, slot, offset, len });
            offset += len;
        }
        Ok(Some(State { spec, signature, modules }))
    }

    /// Writes a new state record to the other slot of the pair: `spec`, its signature, and `modules` (from the
    /// current slot or RAM). The current record stays valid until the new header is written.
    pub async fn save_state(
        &mut self,
        spec: &NodeSpec,
        signature: Option<&[u8; 64]>,
        modules: &[Source<'_>],
    ) -> Result<Vec<StoredModule>, StoreError<S::Error>> {
        let spec_bytes = postcard::to_allocvec(spec).unwrap_or_default();
        let mut head = Vec::with_capacity(spec_bytes.len() + 71);
        head.extend_from_slice(&(spec_bytes.len() as u32).to_le_bytes());
        head.extend_from_slice(&spec_bytes);
        head.push(u8::from(signature.is_some()));
        head.extend_from_slice(signature.unwrap_or(&[0; 64]));
        head.extend_from_slice(&(modules.len() as u16).to_le_bytes());
        let (slot, seq) = next(self.pairs.state_seq, Kind::State);
        let stored = self.write_record(slot, Kind::State, seq, &[&head], modules).await?;
        self.pairs.state_seq = Some((index(slot), seq));
        Ok(stored)
    }

    /// Erases `slot`, streams the body (`parts`, then each module as `sha | len | bytes`) after the header's
    /// room while hashing it, then writes the header.
    async fn write_record(
        &mut self,
        slot: Slot,
        kind: Kind,
        seq: u32,
        parts: &[&[u8]],
        modules: &[Source<'_>],
    ) -> Result<Vec<StoredModule>, StoreError<S::Error>> {
        let len = parts.iter().map(|p| p.len()).sum::<usize>() + modules.iter().map(|m| 36 + m.len()).sum::<usize>();
        let room = self.storage.slot_len();
        if HEADER_LEN + len > room {
            return Err(StoreError::TooLarge { need: HEADER_LEN + len, slot: room });
        }
        self.storage.erase(slot).await.map_err(StoreError::Flash)?;
        let mut hasher = Hasher::new();
        let mut at = HEADER_LEN;
        for part in parts {
            self.put(slot, &mut at, &mut hasher, part).await?;
        }
        let mut stored = Vec::with_capacity(modules.len());
        for m in modules {
            let mut entry = [0u8; 36];
            entry[..32].copy_from_slice(&m.sha256());
            entry[32..].copy_from_slice(&(m.len() as u32).to_le_bytes());
            self.put(slot, &mut at, &mut hasher, &entry).await?;
            stored.push(StoredModule { sha256: m.sha256(), slot, offset: at, len: m.len() });
            match m {
                Source::Ram(_, bytes) => self.put(slot, &mut at, &mut hasher, bytes).await?,
                Source::Flash(from) => {
                    let mut buf = [0u8; CHUNK];
                    let mut done = 0;
                    while done < from.len {
                        let n = CHUNK.min(from.len - done);
                        self.storage
                            .read(from.slot, from.offset + done, &mut buf[..n])
                            .await
                            .map_err(StoreError::Flash)?;
                        self.put(slot, &mut at, &mut hasher, &buf[..n]).await?;
                        done += n;
                    }
                }
            }
        }
        let header = Header { kind: kind as u8, seq, len: len as u32, sha256: hasher.finalize().into() };
        self.storage.write(slot, 0, &header.to_bytes()).await.map_err(StoreError::Flash)?;
        Ok(stored)
    }

    async fn put(
        &mut self,
        slot: Slot,
        at: &mut usize,
        h: &mut Hasher,
        bytes: &[u8],
    ) -> Result<(), StoreError<S::Error>> {
        for chunk in bytes.chunks(CHUNK) {
            self.storage.write(slot, *at, chunk).await.map_err(StoreError::Flash)?;
            h.update(chunk);
            *at += chunk.len();
        }
        Ok(())
    }

    /// A stored module's bytes, read into RAM to instantiate it.
    pub async fn module(&mut self, m: &StoredModule) -> Result<Vec<u8>, StoreError<S::Error>> {
        let mut bytes = vec![0u8; m.len];
        for (i, chunk) in bytes.chunks_mut(CHUNK).enumerate() {
            self.storage.read(m.slot, m.offset + i * CHUNK, chunk).await.map_err(StoreError::Flash)?;
        }
        Ok(bytes)
    }
}

fn index(slot: Slot) -> usize {
    match slot {
        Slot::IdentityA | Slot::StateA => 0,
        Slot::IdentityB | Slot::StateB => 1,
    }
}

/// The slot and sequence number of the next record of `kind`, after the current one.
fn next(current: Option<(usize, u32)>, kind: Kind) -> (Slot, u32) {
    match current {
        None => (pair(kind)[0], 1),
        Some((i, seq)) => (pair(kind)[1 - i], seq.wrapping_add(1)),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use alloc::string::ToString;

    use super::*;
    use crate::test_util::{block_on, MemFlash};

    fn spec(generation: u64) -> NodeSpec {
        NodeSpec { issuer: 9, generation, instances: vec![] }
    }

    #[test]
    fn state_and_identity_survive_a_reload_and_modules_are_carried_over() {
        block_on(async {
            let mut store = Store::new(MemFlash::new(4096));
            assert_eq!(store.load_state().await.unwrap(), None);
            let stored =
                store.save_state(&spec(1), Some(&[7; 64]), &[Source::Ram([1; 32], b"module-one")]).await.unwrap();
            // The next spec keeps the module (copied from flash) and adds another.
            let mut again = Store::new(store.storage.clone());
            let s = again.load_state().await.unwrap().unwrap();
            assert_eq!((s.spec.generation, s.signature, s.modules.len()), (1, Some([7; 64]), 1));
            let sources = [Source::Flash(stored[0]), Source::Ram([2; 32], b"two")];
            again.save_state(&spec(2), None, &sources).await.unwrap();
            let mut third = Store::new(again.storage.clone());
            let s = third.load_state().await.unwrap().unwrap();
            assert_eq!((s.spec.generation, s.signature), (2, None));
            assert_eq!(third.module(&s.modules[0]).await.unwrap(), b"module-one");
            assert_eq!(third.module(&s.modules[1]).await.unwrap(), b"two");

            let id =
                IdentityRecord { node: "n".to_string(), node_secret: [1; 32], cluster_key: [2; 32], counter_mark: 5 };
            third.save_identity(&id).await.unwrap();
            third.save_identity(&IdentityRecord { counter_mark: 6, ..id.clone() }).await.unwrap();
            let mut fourth = Store::new(third.storage.clone());
            assert_eq!(fourth.load_identity().await.unwrap().map(|i| i.counter_mark), Some(6));
        });
    }

    #[test]
    fn a_cut_write_leaves_the_previous_record() {
        block_on(async {
            let mut store = Store::new(MemFlash::new(4096));
            store.save_state(&spec(1), None, &[]).await.unwrap();
            // The second write dies after its body: no header, so generation 1 is what a reboot finds.
            store.storage.fail_header_writes = true;
            assert!(store.save_state(&spec(2), None, &[Source::Ram([3; 32], b"x")]).await.is_err());
            let mut rebooted = Store::new(store.storage.clone());
            assert_eq!(rebooted.load_state().await.unwrap().unwrap().spec.generation, 1);
            // A corrupted body is no record either.
            rebooted.storage.corrupt(Slot::StateA, HEADER_LEN + 2);
            assert_eq!(Store::new(rebooted.storage.clone()).load_state().await.unwrap(), None);
        });
    }

    #[test]
    fn a_record_larger_than_a_slot_is_refused_before_anything_is_erased() {
        block_on(async {
            let mut store = Store::new(MemFlash::new(256));
            store.save_state(&spec(1), None, &[]).await.unwrap();
            let big = [0u8; 300];
            let e = store.save_state(&spec(2), None, &[Source::Ram([1; 32], &big)]).await.unwrap_err();
            assert!(matches!(e, StoreError::TooLarge { .. }));
            assert_eq!(Store::new(store.storage.clone()).load_state().await.unwrap().unwrap().spec.generation, 1);
        });
    }
}
