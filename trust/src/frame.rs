//! The exact bytes that signatures and tags cover. Every frame starts with a kind byte and the
//! length-prefixed context, so no frame of one kind or context can be parsed as another; variable fields
//! carry their length so `("ab", "c")` and `("a", "bc")` never frame alike.
//!
//! ```text
//! document: 0x01 | ctx_len:u8 | ctx | body
//! report:   0x02 | ctx_len:u8 | ctx | node_len:u64be | node | counter:u64be | payload
//! ```
//! The layouts are pinned by golden tests below: changing them invalidates every stored signature.

use crate::context::Context;
use alloc::vec::Vec;

const DOCUMENT: u8 = 0x01;
const REPORT: u8 = 0x02;

/// Something a frame can be written into: a buffer (for ed25519, which needs the message contiguous) or a
/// running MAC (which does not, and so copies nothing).
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Writes the frame of a signed document.
pub(crate) fn document(sink: &mut impl Sink, context: Context, body: &[u8]) {
    sink.put(&[DOCUMENT, context.len_byte()]);
    sink.put(context.label());
    sink.put(body);
}

/// Writes the frame of a node report. `usize` always fits `u64` on the targets we build for (<= 64-bit).
pub(crate) fn report(sink: &mut impl Sink, context: Context, node: &str, counter: u64, payload: &[u8]) {
    sink.put(&[REPORT, context.len_byte()]);
    sink.put(context.label());
    sink.put(&(node.len() as u64).to_be_bytes());
    sink.put(node.as_bytes());
    sink.put(&counter.to_be_bytes());
    sink.put(payload);
}

/// The document frame in a fresh buffer sized exactly (no regrowth while copying the body).
pub(crate) fn document_vec(context: Context, body: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(2 + context.label().len() + body.len());
    document(&mut buf, context, body);
    buf
}

/// The report frame in a fresh buffer sized exactly.
pub(crate) fn report_vec(context: Context, node: &str, counter: u64, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(2 + context.label().len() + 8 + node.len() + 8 + payload.len());
    report(&mut buf, context, node, counter, payload);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: Context = Context::new(b"t");

    #[test]
    fn document_layout_is_pinned() {
        assert_eq!(document_vec(CTX, b"ab"), [0x01, 1, b't', b'a', b'b']);
    }

    #[test]
    fn report_layout_is_pinned() {
        let framed = report_vec(CTX, "n1", 0x0102, b"p");
        let expected = [
            0x02, 1, b't', // kind, context
            0, 0, 0, 0, 0, 0, 0, 2, b'n', b'1', // node
            0, 0, 0, 0, 0, 0, 0x01, 0x02, // counter
            b'p',
        ];
        assert_eq!(framed, expected);
        assert_eq!(framed.capacity(), framed.len());
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        assert_ne!(report_vec(CTX, "ab", 1, b"c"), report_vec(CTX, "a", 1, b"bc"));
        assert_ne!(document_vec(Context::new(b"ab"), b"c"), document_vec(Context::new(b"a"), b"bc"));
    }
}
