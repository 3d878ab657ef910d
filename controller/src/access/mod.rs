//! Who may use the API: bearer credentials with a role, cluster-wide or held to a namespace.
//!
//! - [`rule`]: what each route needs and whether a grant covers it (pure).
//! - [`index`]: the credentials the API checks every request against, by token hash, shared between the
//!   cluster (which creates, loads and deletes them) and the HTTP layer (which only reads).
//!
//! A token is `ecr_` + 64 hex digits (256 random bits). The store keeps its sha256 only, so a stolen store file
//! grants nothing; a plain hash suffices because the secret is random, not chosen by a person.

pub mod index;
pub mod rule;

pub use index::{Access, Entry};
pub use rule::{need, Grant, Need, Role};

use sha2::{Digest, Sha256};

/// Every API bearer token starts so: named apart from join tokens (`EJ1…`), which `edge-agent --join` takes.
pub const TOKEN_PREFIX: &str = "ecr_";

/// A new bearer token and its sha256.
pub fn generate_token() -> (String, [u8; 32]) {
    let secret: [u8; 32] = rand::random();
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_random_and_prefixed() {
        let (a, ha) = super::generate_token();
        let (b, _) = super::generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with("ecr_") && a.len() == 68);
        assert_eq!(super::token_hash(&a), ha);
    }
}
