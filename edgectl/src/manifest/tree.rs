//! A YAML stream as trees whose every node knows where it starts, built from the events of `yaml-rust2`'s pull
//! parser. The tree keeps what the manifest decoder needs (scalars with their text and whether they were plain,
//! sequences, mappings in source order) and nothing else.
//!
//! **Invariants:** nesting deeper than [`MAX_DEPTH`] is refused before the parser goes further, and the tree is
//! built with an explicit stack, so no input can exhaust the call stack; aliases are refused, so a small input
//! cannot expand into a large tree. Work and memory are linear in the input.

use std::fmt;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting of sequences and mappings accepted (a manifest needs four).
pub const MAX_DEPTH: usize = 32;

/// A position in the source, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub line: usize,
    pub col: usize,
}

impl Mark {
    fn of(m: &Marker) -> Mark {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Mark { line: m.line(), col: m.col().saturating_add(1) }
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `plain`: written without quotes (so `~`, `null` and nothing at all mean null).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in source order; keys may repeat (the decoder refuses that).
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub at: Mark,
}

impl Node {
    /// A plain empty scalar, `~` or `null`: YAML's null.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// What the node is, for "expected …, found …" messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Malformed YAML, where the parser stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub at: Mark,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

enum Frame {
    Seq(Mark, Vec<Node>),
    /// A mapping's entries so far, and a key waiting for its value.
    Map(Mark, Vec<(Node, Node)>, Option<Node>),
}

/// Every document of `text`, in order (an empty document is a null scalar).
pub fn documents(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let (event, marker) =
            parser.next_token().map_err(|e| SyntaxError { at: Mark::of(e.marker()), message: e.info().to_string() })?;
        let at = Mark::of(&marker);
        let done = match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart => None,
            Event::DocumentStart => {
                root = None;
                None
            }
            Event::DocumentEnd => {
                docs.push(
                    root.take().unwrap_or(Node { value: Value::Scalar { text: String::new(), plain: true }, at }),
                );
                None
            }
            Event::Alias(_) => {
                return Err(SyntaxError { at, message: "aliases (*name) are not supported in manifests".into() })
            }
            Event::Scalar(text, style, _, _) => {
                Some(Node { value: Value::Scalar { text, plain: style == TScalarStyle::Plain }, at })
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(SyntaxError { at, message: format!("nested more than {MAX_DEPTH} levels deep") });
                }
                stack.push(match event {
                    Event::SequenceStart(..) => Frame::Seq(at, Vec::new()),
                    _ => Frame::Map(at, Vec::new(), None),
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq(start, items)) => Some(Node { value: Value::Seq(items), at: start }),
                // A block mapping's start event is marked after its first key: point at that key instead.
                Some(Frame::Map(start, entries, _)) => {
                    let at = entries.first().map_or(start, |(k, _)| k.at);
                    Some(Node { value: Value::Map(entries), at })
                }
                None => return Err(SyntaxError { at, message: "unbalanced end of a collection".into() }),
            },
        };
        let Some(node) = done else { continue };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, entries, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(n: &Node) -> &str {
        match &n.value {
            Value::Scalar { text, .. } => text,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn marks_are_one_based_lines_and_columns() {
        let docs = documents("a: 1\nb:\n  c: \"x\"\n").unwrap();
        assert_eq!(docs.len(), 1);
        let Value::Map(entries) = &docs[0].value else { panic!() };
        assert_eq!(entries[0].0.at, Mark { line: 1, col: 1 });
        assert_eq!(entries[0].1.at, Mark { line: 1, col: 4 });
        let Value::Map(inner) = &entries[1].1.value else { panic!() };
        assert_eq!((scalar(&inner[0].0), inner[0].0.at), ("c", Mark { line: 3, col: 3 }));
        assert_eq!(inner[0].1.value, Value::Scalar { text: "x".into(), plain: false });
    }

    #[test]
    fn several_documents_and_empty_ones() {
        let docs = documents("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs[1].is_null());
        assert_eq!(docs[2].at.line, 4);
        assert!(documents("").unwrap().is_empty());
    }

    #[test]
    fn refuses_aliases_depth_and_bad_syntax_with_a_position() {
        let e = documents("a: &x 1\nb: *x\n").unwrap_err();
        assert!(e.message.contains("aliases"), "{e}");
        assert_eq!(e.at.line, 2);
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(documents(&deep).is_err(), "the scanner's own flow limit, or ours");
        let block: String = (0..40).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        assert!(documents(&block).unwrap_err().message.contains("nested more than 32"));
        let e = documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.at.line >= 1, "{e}");
        let e = documents("a: 1\n b: 2\n").unwrap_err();
        assert_eq!(e.at.line, 2, "{e}");
    }

    #[test]
    fn hostile_bytes_are_errors_not_panics() {
        for input in
            ["{", "}", "]", "- - - -", ":", "? [a]\n: b", "%YAML 9.9\n---\n", "\"\\u12", "a: |\n x\n  y", "!!", "&a"]
        {
            let _ = documents(input);
        }
    }
}
