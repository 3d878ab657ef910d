//! `edge_proto::decode`: every payload either side accepts from the broker, of either protocol version.
//!
//! Invariants: a decoded envelope, encoded again for the version it came in (with its `auth`), decodes to the
//! same envelope, and is never longer than the input (postcard has one shortest encoding; a longer input can
//! only hold over-long varints). A report's `auth` of the report length parses and prints back to itself.

use edge_proto::auth::{ReportAuth, REPORT_AUTH_LEN};
use edge_proto::{decode, encode_for_with_auth};

use super::Target;

pub const TARGET: Target = Target {
    name: "envelope",
    about: "edge_proto::decode (protocol 3 and 4 envelopes)",
    run,
    dict: &[&[3], &[4], &[0], &[1], &[64], &[24]],
    max_len: 4096,
};

fn run(data: &[u8]) -> bool {
    let Ok(envelope) = decode(data) else { return false };
    let again = encode_for_with_auth(envelope.version, &envelope.message, envelope.auth.as_deref());
    assert!(again.len() <= data.len(), "re-encoded to {} bytes from {}", again.len(), data.len());
    assert_eq!(decode(&again).as_ref(), Ok(&envelope), "decode(encode(decode(x))) != decode(x)");
    if let Some(auth) = envelope.auth.as_deref().filter(|a| a.len() == REPORT_AUTH_LEN) {
        let parsed = ReportAuth::from_bytes(auth).expect("an auth of the report length parses");
        assert_eq!(parsed.to_bytes(), auth);
    }
    true
}
