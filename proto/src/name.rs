//! Names that travel in topics, keys and paths: DNS-1123 labels, as Kubernetes uses for most objects.

use core::fmt;

/// Longest accepted name, as a DNS label.
pub const MAX_NAME: usize = 63;

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong(usize),
    /// A character outside `a-z`, `0-9` and `-`.
    BadChar(char),
    /// Starts or ends with `-`.
    BadEdge,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("name is empty"),
            NameError::TooLong(n) => write!(f, "name is {n} characters long (at most {MAX_NAME})"),
            NameError::BadChar(c) => write!(f, "name contains {c:?} (only a-z, 0-9 and '-' are allowed)"),
            NameError::BadEdge => f.write_str("name must start and end with a letter or digit"),
        }
    }
}

impl core::error::Error for NameError {}

/// Accepts lowercase DNS labels: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME {
        return Err(NameError::TooLong(name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(NameError::BadChar(c));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(NameError::BadEdge);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels_and_refuses_the_rest() {
        for ok in ["a", "dev-1", "rpi-4b", "0abc"] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(validate_name("Dev"), Err(NameError::BadChar('D')));
        assert_eq!(validate_name("a/b"), Err(NameError::BadChar('/')));
        assert_eq!(validate_name("a+"), Err(NameError::BadChar('+')));
        assert_eq!(validate_name("-a"), Err(NameError::BadEdge));
        assert_eq!(validate_name(&"a".repeat(64)), Err(NameError::TooLong(64)));
    }
}
