//! `edge-trust`'s parsers of hostile input: join tokens (`JoinToken::parse`, fingerprints), signed envelopes
//! (`Signed::decode` and `verify`), and the report-counter replay window, checked against a model.
//!
//! Invariants:
//! - a parsed token prints as its canonical form (lowercase hex, the 86 characters of `TOKEN_LEN`), which is
//!   the input trimmed with its hex lowercased, and parses back to the same token; a fingerprint likewise;
//! - a decoded envelope re-encodes to itself, no longer than the input; one that verifies under the harness's
//!   key carries exactly the signature that key makes (the fuzzer cannot forge: ed25519 is deterministic);
//! - the replay window admits a counter exactly when a set-of-seen-counters model does, `check` agrees with
//!   `accept`, and a refusal changes nothing.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use edge_proto::auth::ReportAuth;
use edge_trust::replay::WINDOW;
use edge_trust::token::{MAX_TOKEN_INPUT, TOKEN_LEN, TOKEN_PREFIX};
use edge_trust::{sign, verify, Context, Fingerprint, JoinToken, KeyPair, PublicKey, ReplayWindow, Signed};

use super::{text, Target};

pub const TOKEN: Target = Target {
    name: "token",
    about: "edge_trust::JoinToken::parse and fingerprints",
    run: token,
    dict: &[b"EJ1", b"::", b".", b"sha256:", b"ab", b"AB", b"0", b"f", b" ", b"\n", b"\xc3\xa9"],
    max_len: 320,
};

pub const SIGNED: Target = Target {
    name: "signed",
    about: "edge_trust::Signed::decode and verify; report auth; public keys",
    run: signed,
    dict: &[&[0], &[64], &[0x80, 0x80, 0x04], &[0xff; 32]],
    max_len: 2048,
};

pub const REPLAY: Target = Target {
    name: "replay",
    about: "edge_trust::ReplayWindow against a model",
    run: replay,
    dict: &[&[0xff], &[0x80], &[0x40], &[0x00], &[0x7f], &[0xff; 8]],
    max_len: 512,
};

/// The key the harness signs seeds with (`crate::seeds`), fixed so the corpus is reproducible.
pub fn harness_key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::from_secret_bytes(&[7; 32]))
}

fn token(data: &[u8]) -> bool {
    let input = text(data);
    let mut accepted = false;
    match JoinToken::parse(&input) {
        Ok(t) => {
            assert!(input.len() <= MAX_TOKEN_INPUT);
            let printed = t.to_string();
            assert_eq!(printed.len(), TOKEN_LEN, "{printed:?}");
            let trimmed = input.trim();
            assert_eq!(printed, format!("{TOKEN_PREFIX}{}", trimmed[TOKEN_PREFIX.len()..].to_ascii_lowercase()));
            assert_eq!(JoinToken::parse(&printed).as_ref(), Ok(&t));
            // The secret is the last 32 digits; Debug may show the public part, which a hostile token can make
            // hold the same digits (a finding of this target, `fuzz/corpus/token/secret-equals-fingerprint`).
            let (public, secret) = printed.split_at(printed.len() - 32);
            assert!(public.contains(secret) || !format!("{t:?}").contains(secret), "Debug shows the secret");
            accepted = true;
        }
        Err(e) => {
            // Errors never quote the input: it may hold a secret.
            let shown = e.to_string();
            let secretish = input.trim().rsplit('.').next().unwrap_or("");
            let hexy = secretish.len() >= 8 && secretish.bytes().all(|b| b.is_ascii_hexdigit());
            assert!(!hexy || !shown.contains(secretish), "{shown:?}");
        }
    }
    if let Ok(fp) = input.parse::<Fingerprint>() {
        assert_eq!(fp.to_string().parse::<Fingerprint>(), Ok(fp));
        accepted = true;
    }
    accepted
}

fn signed(data: &[u8]) -> bool {
    let mut accepted = false;
    if let Some(auth) = ReportAuth::from_bytes(data) {
        assert_eq!(auth.to_bytes(), data);
        accepted = true;
    }
    if let Some(bytes) = data.first_chunk::<32>() {
        if let Ok(key) = PublicKey::from_bytes(bytes) {
            assert_eq!(&key.to_bytes(), bytes);
        }
    }
    let max_body = edge_trust::DEFAULT_MAX_BODY;
    if let Ok(s) = Signed::decode(data, max_body) {
        let again = s.encode();
        assert!(again.len() <= data.len());
        assert_eq!(Signed::decode(&again, max_body).ok().as_ref(), Some(&s));
        let key = harness_key();
        for context in [Context::SPEC, Context::ARTIFACT] {
            if verify(&key.public(), context, max_body, &s).is_ok() {
                let genuine = sign(key, context, s.unverified_body().to_vec());
                assert_eq!(s.signature(), genuine.signature(), "a signature verified that the key did not make");
            }
        }
        accepted = true;
    }
    accepted
}

/// Input: an optional `0xfe` + 8 bytes (resume at that highest counter), then operations: a byte below 0x80
/// offers the highest counter so far plus (byte − 64); `0x80` or above offers the next 8 bytes (little-endian).
fn replay(data: &[u8]) -> bool {
    let mut rest = data;
    let (mut window, mut resumed) = (ReplayWindow::new(), None);
    if let Some((&0xfe, tail)) = rest.split_first() {
        if let Some(h) = tail.first_chunk::<8>() {
            let h = u64::from_le_bytes(*h);
            (window, resumed) = (ReplayWindow::resume(h), Some(h));
            rest = &tail[8..];
        }
    }
    let mut accepted_set = BTreeSet::new();
    let mut highest = resumed;
    while let Some((&op, tail)) = rest.split_first() {
        let counter = if op < 0x80 {
            rest = tail;
            highest.unwrap_or(0).wrapping_add(u64::from(op)).wrapping_sub(64)
        } else {
            let Some(c) = tail.first_chunk::<8>() else { break };
            rest = &tail[8..];
            u64::from_le_bytes(*c)
        };
        let seen = accepted_set.contains(&counter) || resumed.is_some_and(|h| counter <= h);
        let in_window = highest.is_none_or(|h| counter > h || h - counter < WINDOW);
        let expected = !seen && in_window;
        let before = window;
        let checked = window.check(counter).is_ok();
        let got = window.accept(counter).is_ok();
        assert_eq!((checked, got), (expected, expected), "counter {counter} after {before:?}");
        if got {
            accepted_set.insert(counter);
            highest = Some(highest.map_or(counter, |h| h.max(counter)));
        } else {
            assert_eq!(window, before, "a refused counter changed the window");
        }
        assert_eq!(window.highest(), highest);
    }
    !accepted_set.is_empty()
}
