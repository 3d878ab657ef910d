//! The write-ahead log's record format and the recovery scan: pure functions over bytes, no I/O.
//!
//! A record, all integers little-endian:
//!
//! ```text
//! offset  size  field
//!      0     8  seq       the record's sequence number (the first record of a store is 1)
//!      8     4  len       payload length in bytes
//!     12    32  digest    sha256(DOMAIN || salt u64 || seq u64 || len u32 || payload)
//!     44   len  payload   operations, back to back, until the payload ends:
//!                           table u8 (1 workloads, 2 nodes, 3 namespaces), kind u8 (1 put, 2 delete),
//!                           key_len u32, key (UTF-8),
//!                           for a put: value_len u32, value (the record's JSON, as stored in redb)
//! ```
//!
//! The salt is the store's issuer id: records written for another store (a WAL left behind when its redb file was
//! deleted) fail their digest and so read as the end of the log. The digest covers the header, so a zeroed or torn
//! header never passes, and a new record written over an older, longer one leaves a tail that fails too.
//!
//! **Recovery rule** ([`scan`]): from offset 0, read records while each one is whole, passes its digest and
//! carries exactly the previous record's seq + 1; stop at the first that does not (that is the end of the log:
//! a torn last append, an older record left behind a wrap, or zeros). Of that prefix, the records with a seq
//! above the durable `meta.wal_seq` are the ones to apply, in order; the first of them must then be
//! `wal_seq + 1`, or records are missing and the scan fails rather than apply a later change without an earlier
//! one.

use sha2::{Digest, Sha256};

/// Bytes before a record's payload.
pub(crate) const HEADER: usize = 8 + 4 + 32;
/// Separates this digest from any other sha256 use; a new format gets a new domain.
const DOMAIN: &[u8] = b"edge-controller-wal-1\0";

/// The tables a logged change can touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Workloads,
    Nodes,
    Namespaces,
    Tokens,
    Members,
    Credentials,
    Audit,
}

impl Table {
    fn code(self) -> u8 {
        match self {
            Table::Workloads => 1,
            Table::Nodes => 2,
            Table::Namespaces => 3,
            Table::Tokens => 4,
            Table::Members => 5,
            Table::Credentials => 6,
            Table::Audit => 7,
        }
    }

    fn from_code(code: u8) -> Option<Table> {
        match code {
            1 => Some(Table::Workloads),
            2 => Some(Table::Nodes),
            3 => Some(Table::Namespaces),
            4 => Some(Table::Tokens),
            5 => Some(Table::Members),
            6 => Some(Table::Credentials),
            7 => Some(Table::Audit),
            _ => None,
        }
    }
}

/// One change of a whole stored record: put `value` at `key`, or delete `key` when `value` is `None`.
/// Applying an operation twice leaves what applying it once does, so replaying an applied record is harmless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Op {
    pub(crate) table: Table,
    pub(crate) key: String,
    pub(crate) value: Option<Vec<u8>>,
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) ops: Vec<Op>,
}

/// Why a log cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("the log's next record is {first}, but the store is durable only up to {durable}: records are missing")]
    Gap { durable: u64, first: u64 },
    #[error("log record {seq} passes its digest but does not decode")]
    Undecodable { seq: u64 },
}

/// The record for `ops` with sequence number `seq`, or `None` when a key, a value or the payload exceeds the
/// format's u32 lengths (such a change cannot be logged; the caller commits it to redb directly).
pub(crate) fn encode(seq: u64, salt: u64, ops: &[Op]) -> Option<Vec<u8>> {
    let mut payload_len: usize = 0;
    for op in ops {
        let value = op.value.as_ref().map_or(Some(0), |v| v.len().checked_add(4))?;
        payload_len = payload_len.checked_add(6)?.checked_add(op.key.len())?.checked_add(value)?;
    }
    let len = u32::try_from(payload_len).ok()?;
    let mut out = Vec::with_capacity(HEADER + payload_len);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 32]);
    for op in ops {
        out.push(op.table.code());
        // Each length fits: the payload, which holds it, does.
        out.push(if op.value.is_some() { 1 } else { 2 });
        out.extend_from_slice(&(op.key.len() as u32).to_le_bytes());
        out.extend_from_slice(op.key.as_bytes());
        if let Some(value) = &op.value {
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
        }
    }
    let d = digest(salt, seq, len, &out[HEADER..]);
    out[12..HEADER].copy_from_slice(&d);
    Some(out)
}

/// The records of `log` to apply over a store durable up to `durable` (see the module doc's recovery rule).
pub(crate) fn scan(log: &[u8], salt: u64, durable: u64) -> Result<Vec<Entry>, ScanError> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut previous: Option<u64> = None;
    while let Some((seq, payload, next)) = read_at(log, offset, salt) {
        if let Some(p) = previous {
            if p.checked_add(1) != Some(seq) {
                break;
            }
        }
        if seq > durable {
            if out.is_empty() && durable.checked_add(1) != Some(seq) {
                return Err(ScanError::Gap { durable, first: seq });
            }
            out.push(Entry { seq, ops: decode_ops(payload).ok_or(ScanError::Undecodable { seq })? });
        }
        previous = Some(seq);
        offset = next;
    }
    Ok(out)
}

/// The whole, digest-checked record at `offset`: (seq, payload, offset after it). The length field is checked
/// against what is left of `log` before anything is sliced, so a garbage length costs nothing.
fn read_at(log: &[u8], offset: usize, salt: u64) -> Option<(u64, &[u8], usize)> {
    let header = log.get(offset..offset.checked_add(HEADER)?)?;
    let seq = u64::from_le_bytes(header[0..8].try_into().ok()?);
    let len = u32::from_le_bytes(header[8..12].try_into().ok()?);
    let start = offset + HEADER;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    let payload = log.get(start..end)?;
    (digest(salt, seq, len, payload) == header[12..HEADER]).then_some((seq, payload, end))
}

fn digest(salt: u64, seq: u64, len: u32, payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(salt.to_le_bytes());
    h.update(seq.to_le_bytes());
    h.update(len.to_le_bytes());
    h.update(payload);
    h.finalize().into()
}

fn decode_ops(mut payload: &[u8]) -> Option<Vec<Op>> {
    let mut ops = Vec::new();
    while !payload.is_empty() {
        let table = Table::from_code(take(&mut payload, 1)?[0])?;
        let kind = take(&mut payload, 1)?[0];
        let key = std::str::from_utf8(take_prefixed(&mut payload)?).ok()?.to_string();
        let value = match kind {
            1 => Some(take_prefixed(&mut payload)?.to_vec()),
            2 => None,
            _ => return None,
        };
        ops.push(Op { table, key, value });
    }
    Some(ops)
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Some(head)
}

/// A u32-length-prefixed field; the length is checked against the bytes left before slicing.
fn take_prefixed<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_le_bytes(take(bytes, 4)?.try_into().ok()?);
    take(bytes, usize::try_from(len).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: u64 = 0x5eed;

    fn put(table: Table, key: &str, value: &str) -> Op {
        Op { table, key: key.into(), value: Some(value.as_bytes().to_vec()) }
    }

    fn ops(seq: u64) -> Vec<Op> {
        vec![
            put(Table::Workloads, &format!("default/w{seq}"), &"x".repeat(seq as usize % 7)),
            Op { table: Table::Nodes, key: format!("n{seq}"), value: None },
            put(Table::Namespaces, "ns", "{}"),
        ]
    }

    fn record(seq: u64) -> Vec<u8> {
        encode(seq, SALT, &ops(seq)).unwrap()
    }

    /// A log of records `seqs`, back to back, then `zeros` zero bytes.
    fn log(seqs: impl IntoIterator<Item = u64>, zeros: usize) -> Vec<u8> {
        let mut out: Vec<u8> = seqs.into_iter().flat_map(record).collect();
        out.resize(out.len() + zeros, 0);
        out
    }

    fn seqs(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn records_round_trip_with_their_operations() {
        let entries = scan(&log(1..=3, 100), SALT, 0).unwrap();
        assert_eq!(seqs(&entries), vec![1, 2, 3]);
        assert_eq!(entries[1].ops, ops(2));
        let empty = encode(1, SALT, &[]).unwrap();
        assert_eq!(empty.len(), HEADER);
        assert_eq!(scan(&empty, SALT, 0).unwrap(), vec![Entry { seq: 1, ops: vec![] }]);
    }

    #[test]
    fn an_empty_or_zeroed_log_has_nothing_to_apply() {
        assert_eq!(scan(&[], SALT, 0).unwrap(), vec![]);
        assert_eq!(scan(&[0; 4096], SALT, 0).unwrap(), vec![]);
        assert_eq!(scan(&[0; 4096], SALT, 17).unwrap(), vec![]);
        assert_eq!(scan(&[0; 3], SALT, 0).unwrap(), vec![]);
    }

    #[test]
    fn only_records_above_the_durable_seq_are_applied() {
        assert_eq!(seqs(&scan(&log(1..=5, 64), SALT, 3).unwrap()), vec![4, 5]);
        assert_eq!(seqs(&scan(&log(1..=5, 64), SALT, 5).unwrap()), Vec::<u64>::new());
        // The log may hold only records the store already has (a crash right after a checkpoint).
        assert_eq!(seqs(&scan(&log(1..=5, 64), SALT, 9).unwrap()), Vec::<u64>::new());
    }

    #[test]
    fn every_cut_of_the_last_record_reads_as_the_end_of_the_log() {
        let whole = log(1..=3, 0);
        let two = record(1).len() + record(2).len();
        for cut in two..whole.len() {
            let mut torn = whole[..cut].to_vec();
            torn.resize(whole.len() + 64, 0);
            assert_eq!(seqs(&scan(&torn, SALT, 0).unwrap()), vec![1, 2], "cut at {cut}");
        }
    }

    #[test]
    fn any_flipped_bit_in_a_record_ends_the_log_there() {
        let whole = log(1..=3, 0);
        let (start, end) = (record(1).len(), record(1).len() + record(2).len());
        for byte in start..end {
            let mut bad = whole.clone();
            bad[byte] ^= 0x10;
            assert_eq!(seqs(&scan(&bad, SALT, 0).unwrap()), vec![1], "flipped byte {byte}");
        }
    }

    #[test]
    fn a_wrapped_log_stops_before_the_older_records_behind_it() {
        // Records 1..=6 filled the log; a checkpoint made them durable (wal_seq = 6); 7 and 8 were written from
        // offset 0 over 1..=3, leaving the tail of an old record and then old records 4..=6.
        let old = log(1..=6, 32);
        let new = log(7..=8, 0);
        let mut wrapped = old.clone();
        wrapped[..new.len()].copy_from_slice(&new);
        assert_eq!(seqs(&scan(&wrapped, SALT, 6).unwrap()), vec![7, 8]);
        // Nothing pending: the crash came after the checkpoint, before any new record.
        assert_eq!(seqs(&scan(&old, SALT, 6).unwrap()), Vec::<u64>::new());
        // New records exactly as long as the old ones they cover: the old seq that follows breaks the chain.
        let same_size: Vec<u8> = [record(7), record(8), record(3), record(4)].concat();
        assert_eq!(seqs(&scan(&same_size, SALT, 6).unwrap()), vec![7, 8]);
    }

    #[test]
    fn a_break_in_the_sequence_ends_the_log() {
        let mut gapped = log([4, 5], 0);
        gapped.extend(log([7, 8], 16));
        assert_eq!(seqs(&scan(&gapped, SALT, 3).unwrap()), vec![4, 5]);
        let repeated = log([4, 5, 5, 6], 16);
        assert_eq!(seqs(&scan(&repeated, SALT, 3).unwrap()), vec![4, 5]);
    }

    #[test]
    fn missing_records_are_an_error_not_a_silent_skip() {
        assert_eq!(scan(&log(5..=6, 8), SALT, 3), Err(ScanError::Gap { durable: 3, first: 5 }));
        assert_eq!(
            scan(&log([u64::MAX], 8), SALT, u64::MAX - 2),
            Err(ScanError::Gap { durable: u64::MAX - 2, first: u64::MAX })
        );
    }

    #[test]
    fn sequence_numbers_at_the_top_of_the_range_do_not_overflow() {
        assert_eq!(
            seqs(&scan(&log([u64::MAX - 1, u64::MAX], 8), SALT, u64::MAX - 2).unwrap()),
            vec![u64::MAX - 1, u64::MAX]
        );
        assert_eq!(seqs(&scan(&log([u64::MAX], 8), SALT, u64::MAX).unwrap()), Vec::<u64>::new());
    }

    #[test]
    fn records_of_another_store_are_not_this_logs() {
        assert_eq!(scan(&log(1..=3, 8), SALT + 1, 0).unwrap(), vec![]);
    }

    #[test]
    fn a_huge_length_field_costs_nothing() {
        for len in [u32::MAX, u32::MAX - 43, 1 << 31, 5000] {
            let mut bad = record(1);
            bad[8..12].copy_from_slice(&len.to_le_bytes());
            bad.resize(4096, 0);
            assert_eq!(scan(&bad, SALT, 0).unwrap(), vec![]);
        }
    }

    #[test]
    fn a_digest_valid_payload_that_does_not_decode_is_an_error() {
        for payload in
            [&[9u8, 1, 0, 0, 0, 0][..], &[1, 3, 0, 0, 0, 0], &[1, 1, 5, 0, 0, 0, b'a'], &[1, 2, 1, 0, 0, 0, 0xff], &[1]]
        {
            let len = payload.len() as u32;
            let mut rec = Vec::new();
            rec.extend_from_slice(&1u64.to_le_bytes());
            rec.extend_from_slice(&len.to_le_bytes());
            rec.extend_from_slice(&digest(SALT, 1, len, payload));
            rec.extend_from_slice(payload);
            assert_eq!(scan(&rec, SALT, 0), Err(ScanError::Undecodable { seq: 1 }), "{payload:?}");
        }
    }

    #[test]
    fn the_format_is_pinned() {
        let rec = encode(2, 7, &[Op { table: Table::Nodes, key: "n".into(), value: Some(b"{}".to_vec()) }]).unwrap();
        assert_eq!(&rec[..12], &[2, 0, 0, 0, 0, 0, 0, 0, 13, 0, 0, 0]);
        assert_eq!(&rec[HEADER..], &[2, 1, 1, 0, 0, 0, b'n', 2, 0, 0, 0, b'{', b'}']);
        // sha256(b"edge-controller-wal-1\0" || 7u64 || 2u64 || 13u32 || payload), computed outside this code.
        assert_eq!(hex::encode(&rec[12..HEADER]), "bcbd3b3c10565249fbe61862f089279c7b87c1f4e5fbdea6f69226016e0a3e7c");
    }
}
