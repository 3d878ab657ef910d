//! Mutations of one input, stacked one to four at a time. Chosen for the inputs we take from the wire and from
//! users: postcard (LEB128 varints, length-prefixed strings and lists), JSON, YAML and TOML.
//!
//! - bit flips, bytes set to 0x00 / 0x01 / 0x7f / 0x80 / 0xff, random bytes, small arithmetic;
//! - varint extremes inserted or written over (u64::MAX, u32::MAX, 2^63 as LEB128, over-long encodings);
//! - length inflation: one byte (a length prefix, perhaps) replaced by the LEB128 of a huge count;
//! - splices from another corpus entry, truncations, deleted and duplicated ranges (which grow lists and
//!   nesting), tokens of the target's dictionary and of a shared one of awkward numbers and characters.
//!
//! **Invariant:** an input never grows past `max_len`.

use crate::rng::Rng;

/// LEB128 encodings of the values a decoder must not trust: counts and counters at their limits, and encodings
/// postcard should refuse (over-long, overflowing).
const VARINTS: &[&[u8]] = &[
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], // u64::MAX
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], // 2^63
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], // overflows u64
    &[0xff, 0xff, 0xff, 0xff, 0x0f],                               // u32::MAX
    &[0x80, 0x80, 0x80, 0x80, 0x10],                               // 2^32: overflows u32
    &[0xff, 0xff, 0xff, 0xff, 0x07],                               // i32::MAX
    &[0xff, 0xff, 0x03],                                           // u16::MAX
    &[0x80, 0x80, 0x04],                                           // 2^16: overflows u16
    &[0x80, 0x80, 0x20],                                           // 512 KiB: the payload limit
    &[0x80, 0x00],                                                 // 0, over-long
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], // 0, longer than any u64
    &[0x80],                                                       // a varint cut short
];

/// Counts a length prefix may be inflated to.
const HUGE: &[u64] = &[u64::MAX, 1 << 63, u32::MAX as u64, 1 << 31, 1 << 24, 512 * 1024 + 1, 65_536];

/// Text every target's input may meet: numbers at and past the limits, float oddities, quotes, brackets,
/// separators, a NUL, a multi-byte character, a byte that is not UTF-8.
const TEXT: &[&[u8]] = &[
    b"18446744073709551615",
    b"18446744073709551616",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"4294967295",
    b"4294967296",
    b"-1",
    b"0",
    b"1e308",
    b"1e-308",
    b"NaN",
    b"inf",
    b"-0.0",
    b"0.0000001",
    b"99999999999999999999999999999999",
    b"\"",
    b"'",
    b"\\",
    b"[",
    b"]",
    b"{",
    b"}",
    b":",
    b",",
    b"\n",
    b" ",
    b"\0",
    b"\xc3\xa9",
    b"\xff",
    b"\xf0\x9f\x92\xa5",
];

/// Applies one to four mutations to `buf`; `dict` is the target's own tokens, `other` another corpus entry to
/// splice from. The result is at most `max_len` bytes.
pub fn mutate(buf: &mut Vec<u8>, rng: &mut Rng, dict: &[&[u8]], other: &[u8], max_len: usize) {
    // Mostly one or two: deep stacks wreck structure the decoder would otherwise get past.
    let rounds = [1, 1, 1, 2, 2, 3, 4][rng.below(7)];
    for _ in 0..rounds {
        once(buf, rng, dict, other);
    }
    buf.truncate(max_len);
}

fn once(buf: &mut Vec<u8>, rng: &mut Rng, dict: &[&[u8]], other: &[u8]) {
    let len = buf.len();
    match rng.below(15) {
        0 if len > 0 => {
            let i = rng.below(len);
            buf[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            buf[i] = *rng.pick(&[0x00, 0x01, 0x7f, 0x80, 0xff]);
        }
        2 if len > 0 => {
            let i = rng.below(len);
            buf[i] = rng.next_u64() as u8;
        }
        3 if len > 0 => {
            let i = rng.below(len);
            let delta = rng.below(33) as i32 - 16;
            buf[i] = (i32::from(buf[i]) + delta) as u8;
        }
        4 => {
            let v = *rng.pick(VARINTS);
            put(buf, rng, v);
        }
        5 if len > 0 => {
            // Length inflation: a one-byte length prefix becomes a huge one, the rest left as it was.
            let i = rng.below(len);
            let v = leb128(*rng.pick(HUGE));
            buf.splice(i..i + 1, v);
        }
        6 if !other.is_empty() => {
            let a = rng.below(other.len());
            let b = a + 1 + rng.below(other.len() - a);
            let piece = other[a..b].to_vec();
            put(buf, rng, &piece);
        }
        7 => buf.truncate(rng.below(len + 1)),
        8 if len > 0 => {
            let a = rng.below(len);
            let b = a + 1 + rng.below((len - a).min(64));
            buf.drain(a..b);
        }
        9 if len > 0 => {
            // Repeat a range: long lists, long strings, deep nesting (`[[[[`, `a: {a: {`).
            let a = rng.below(len);
            let b = a + 1 + rng.below((len - a).min(32));
            let piece = buf[a..b].to_vec();
            let times = [1, 2, 8, 64, 512][rng.below(5)];
            let at = rng.below(len + 1);
            let repeated: Vec<u8> = piece.iter().copied().cycle().take(piece.len() * times).collect();
            buf.splice(at..at, repeated);
        }
        10 if !dict.is_empty() => {
            let token = *rng.pick(dict);
            put(buf, rng, token);
        }
        11 => {
            let token = *rng.pick(TEXT);
            put(buf, rng, token);
        }
        12 if len > 1 => {
            let (i, j) = (rng.below(len), rng.below(len));
            buf.swap(i, j);
        }
        13 => {
            let n = 1 + rng.below(8);
            let at = rng.below(len + 1);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            buf.splice(at..at, bytes);
        }
        _ if len > 0 => {
            // A 4- or 8-byte field (a fixed-width counter, a float) set to its extreme.
            let width = if rng.bool() { 4 } else { 8 };
            let i = rng.below(len);
            let value: u64 = *rng.pick(&[u64::MAX, 0, 1 << 63, u64::from(u32::MAX)]);
            for (k, b) in value.to_le_bytes().iter().take(width).enumerate() {
                if let Some(slot) = buf.get_mut(i + k) {
                    *slot = *b;
                }
            }
        }
        _ => {
            let token = *rng.pick(TEXT);
            put(buf, rng, token);
        }
    }
}

/// Inserts `bytes` at a random place, or writes them over what is there.
fn put(buf: &mut Vec<u8>, rng: &mut Rng, bytes: &[u8]) {
    let len = buf.len();
    let at = rng.below(len + 1);
    if rng.bool() || at == len {
        buf.splice(at..at, bytes.iter().copied());
    } else {
        let end = (at + bytes.len()).min(len);
        buf.splice(at..end, bytes.iter().copied());
    }
}

/// The LEB128 (postcard varint) encoding of `v`.
pub fn leb128(mut v: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_matches_postcard() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(leb128(v), postcard::to_allocvec(&v).unwrap(), "{v}");
        }
        assert_eq!(VARINTS[0], &leb128(u64::MAX)[..]);
        assert_eq!(VARINTS[3], &leb128(u64::from(u32::MAX))[..]);
    }

    #[test]
    fn mutations_change_inputs_stay_bounded_and_replay() {
        let seed = b"apiVersion: edge/v1\nkind: Workload\n".to_vec();
        let run = |s: u64| {
            let mut rng = Rng::new(s);
            (0..2_000)
                .map(|_| {
                    let mut buf = seed.clone();
                    mutate(&mut buf, &mut rng, &[b"kind"], b"other input", 64);
                    buf
                })
                .collect::<Vec<_>>()
        };
        let a = run(1);
        assert_eq!(a, run(1), "the same seed, the same campaign");
        assert!(a.iter().all(|b| b.len() <= 64));
        let changed = a.iter().filter(|b| **b != seed).count();
        assert!(changed > 1_800, "{changed} of 2000 changed");
        // An empty input still grows (insertions need no position).
        let mut rng = Rng::new(3);
        let grown = (0..100).any(|_| {
            let mut buf = Vec::new();
            mutate(&mut buf, &mut rng, &[], &[], 64);
            !buf.is_empty()
        });
        assert!(grown);
    }
}
