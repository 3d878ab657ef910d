//! Join tokens, in the manner of K3s: one string an operator copies to a new node, which both pins the
//! cluster and proves the node may join.
//!
//! ```text
//! EJ1<fingerprint: 32 hex>::<id: 16 hex>.<secret: 32 hex>      (86 characters)
//! ```
//! - The fingerprint is the cluster key's ([`Fingerprint`]): a joining node refuses any cluster key that
//!   does not match it, from the first byte it receives.
//! - The id (64 random bits) is public: the controller finds the token's record by it.
//! - The secret (128 random bits) proves possession. The controller keeps only a [`StoredToken`]: the id and
//!   sha256(secret). A 128-bit random secret needs no salt or slow hash: a leaked store still leaves 2^128
//!   guesses per token.
//!
//! Expiry, remaining uses and revocation are the controller's business: it stores them beside the
//! [`StoredToken`] and checks them before [`StoredToken::verify`].
//!
//! `Display` prints the whole token, secret included (that is its purpose: handing it to an operator);
//! `Debug` never prints the secret.

use crate::hex::{self, HexError};
use crate::key::Fingerprint;
use crate::random::{self, RandomError};
use core::fmt;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Every token starts with this: "Edge Join", format 1.
pub const TOKEN_PREFIX: &str = "EJ1";
/// Bytes of a token id.
pub const ID_LEN: usize = 8;
/// Bytes of a token secret.
pub const SECRET_LEN: usize = 16;
/// The length of a token string.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 32 + 2 + 2 * ID_LEN + 1 + 2 * SECRET_LEN;
/// Input longer than this is refused before it is looked at (whitespace around a pasted token is allowed).
pub const MAX_TOKEN_INPUT: usize = 256;

/// The public half of a token, which names its record on the controller.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TokenId([u8; ID_LEN]);

impl TokenId {
    pub const fn from_bytes(bytes: [u8; ID_LEN]) -> TokenId {
        TokenId(bytes)
    }
    pub const fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex::write(f, &self.0)
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({self})")
    }
}

/// The secret half of a token. Wiped when dropped; `Debug` redacts it; `==` is constant time. Serializable
/// because the joining node sends it (with the id) to the controller.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenSecret([u8; SECRET_LEN]);

impl TokenSecret {
    pub const fn from_bytes(bytes: [u8; SECRET_LEN]) -> TokenSecret {
        TokenSecret(bytes)
    }
    pub const fn as_bytes(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }
}

impl PartialEq for TokenSecret {
    fn eq(&self, other: &TokenSecret) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for TokenSecret {}

impl Drop for TokenSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

/// A join token as the operator holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    fingerprint: Fingerprint,
    id: TokenId,
    secret: TokenSecret,
}

/// What the controller keeps of a token: enough to check one, not enough to make one.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StoredToken {
    id: TokenId,
    secret_sha256: [u8; 32],
}

/// Why a string is not a join token. Messages never quote the input (it may hold a secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("join token is empty")]
    Empty,
    #[error("join token is {len} bytes; a token has {TOKEN_LEN} characters")]
    TooLong { len: usize },
    #[error("join token does not start with `{TOKEN_PREFIX}`")]
    WrongPrefix,
    #[error("join token is malformed: {0}")]
    Malformed(&'static str),
    #[error("join token {field} has {found} characters, expected {expected}")]
    BadLength { field: &'static str, expected: usize, found: usize },
    #[error("join token {field} is not hexadecimal")]
    BadHex { field: &'static str },
}

impl JoinToken {
    /// A fresh token for the cluster whose key has `fingerprint`, and the record the controller keeps.
    pub fn generate_with<R: RngCore + CryptoRng>(
        fingerprint: Fingerprint,
        rng: &mut R,
    ) -> Result<(JoinToken, StoredToken), RandomError> {
        let mut id = [0u8; ID_LEN];
        random::fill(rng, &mut id)?;
        let mut secret = TokenSecret([0u8; SECRET_LEN]);
        random::fill(rng, &mut secret.0)?;
        let token = JoinToken { fingerprint, id: TokenId(id), secret };
        let stored = StoredToken::of(&token);
        Ok((token, stored))
    }

    /// [`JoinToken::generate_with`] the operating system's random source.
    #[cfg(feature = "std")]
    pub fn generate(fingerprint: Fingerprint) -> Result<(JoinToken, StoredToken), RandomError> {
        JoinToken::generate_with(fingerprint, &mut random::os())
    }

    /// Parses a token as printed by `Display`. Surrounding whitespace (a pasted newline) is ignored; hex
    /// digits may be in either case. Work is bounded by [`MAX_TOKEN_INPUT`] whatever the input.
    pub fn parse(input: &str) -> Result<JoinToken, TokenError> {
        if input.len() > MAX_TOKEN_INPUT {
            return Err(TokenError::TooLong { len: input.len() });
        }
        let s = input.trim();
        if s.is_empty() {
            return Err(TokenError::Empty);
        }
        let rest = s.strip_prefix(TOKEN_PREFIX).ok_or(TokenError::WrongPrefix)?;
        let (fingerprint, credential) =
            rest.split_once("::").ok_or(TokenError::Malformed("no `::` after the fingerprint"))?;
        let (id, secret) = credential.split_once('.').ok_or(TokenError::Malformed("no `.` between id and secret"))?;
        Ok(JoinToken {
            fingerprint: field(fingerprint, "fingerprint").map(Fingerprint::from_bytes)?,
            id: TokenId(field(id, "id")?),
            secret: TokenSecret(field(secret, "secret")?),
        })
    }

    /// The cluster key's fingerprint this token pins.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The token's public id.
    pub fn id(&self) -> TokenId {
        self.id
    }

    /// The token's secret, which the joining node presents.
    pub fn secret(&self) -> &TokenSecret {
        &self.secret
    }
}

fn field<const N: usize>(digits: &str, name: &'static str) -> Result<[u8; N], TokenError> {
    hex::decode(digits).map_err(|e| match e {
        HexError::Length { found } => TokenError::BadLength { field: name, expected: 2 * N, found },
        HexError::Digit => TokenError::BadHex { field: name },
    })
}

impl core::str::FromStr for JoinToken {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<JoinToken, TokenError> {
        JoinToken::parse(s)
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(TOKEN_PREFIX)?;
        hex::write(f, self.fingerprint.as_bytes())?;
        f.write_str("::")?;
        hex::write(f, &self.id.0)?;
        f.write_str(".")?;
        hex::write(f, &self.secret.0)
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("fingerprint", &self.fingerprint)
            .field("id", &self.id)
            .field("secret", &self.secret)
            .finish()
    }
}

impl StoredToken {
    /// The record of `token`.
    pub fn of(token: &JoinToken) -> StoredToken {
        StoredToken { id: token.id, secret_sha256: Sha256::digest(token.secret.0).into() }
    }

    /// The id to look the record up by.
    pub fn id(&self) -> TokenId {
        self.id
    }

    /// Whether `secret` is this token's. Constant time in the secret (the comparison of digests is
    /// `subtle`'s), so timing reveals nothing about how close a guess was.
    pub fn verify(&self, secret: &TokenSecret) -> bool {
        let digest: [u8; 32] = Sha256::digest(secret.0).into();
        digest.ct_eq(&self.secret_sha256).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::testing::{CountingRng, FailingRng};
    use alloc::format;
    use alloc::string::{String, ToString};

    fn fp() -> Fingerprint {
        Fingerprint::from_bytes([0xab; 16])
    }

    fn sample() -> (JoinToken, StoredToken) {
        JoinToken::generate_with(fp(), &mut CountingRng(0)).unwrap()
    }

    #[test]
    fn display_is_pinned_and_parses_back() {
        let (token, _) = sample();
        let printed = token.to_string();
        assert_eq!(printed, "EJ1abababababababababababababababab::0001020304050607.08090a0b0c0d0e0f1011121314151617");
        assert_eq!(printed.len(), TOKEN_LEN);
        assert_eq!(JoinToken::parse(&printed), Ok(token.clone()));
        assert_eq!(JoinToken::parse(&format!("  {printed}\n")), Ok(token.clone()));
        let upper = format!("EJ1{}", printed[3..].to_uppercase());
        assert_eq!(upper.parse::<JoinToken>(), Ok(token));
    }

    #[test]
    fn stored_token_verifies_only_its_secret() {
        let (token, stored) = sample();
        assert_eq!(stored.id(), token.id());
        assert!(stored.verify(token.secret()));
        let mut other = *token.secret().as_bytes();
        other[15] ^= 1;
        assert!(!stored.verify(&TokenSecret::from_bytes(other)));
        assert!(!stored.verify(&TokenSecret::from_bytes([0; SECRET_LEN])));
    }

    #[test]
    fn stored_token_never_holds_the_secret() {
        let (token, stored) = sample();
        let encoded = postcard::to_allocvec(&stored).unwrap();
        let secret = token.secret().as_bytes();
        assert!(!encoded.windows(secret.len()).any(|w| w == secret));
        assert_eq!(postcard::from_bytes::<StoredToken>(&encoded).unwrap(), stored);
    }

    #[test]
    fn generated_tokens_differ() {
        let (a, _) = JoinToken::generate_with(fp(), &mut CountingRng(0)).unwrap();
        let (b, _) = JoinToken::generate_with(fp(), &mut CountingRng(1)).unwrap();
        assert_ne!(a.id(), b.id());
        assert_ne!(a.secret(), b.secret());
        assert_eq!(JoinToken::generate_with(fp(), &mut FailingRng).unwrap_err(), RandomError);
    }

    #[cfg(feature = "std")]
    #[test]
    fn os_generation_round_trips() {
        let (token, stored) = JoinToken::generate(fp()).unwrap();
        let parsed = JoinToken::parse(&token.to_string()).unwrap();
        assert!(stored.verify(parsed.secret()));
        assert_eq!(parsed.fingerprint(), fp());
    }

    #[test]
    fn debug_redacts_the_secret() {
        let (token, _) = sample();
        let printed = format!("{token:?}");
        assert!(printed.contains("<redacted>"), "{printed}");
        assert!(!printed.contains("08090a0b"), "{printed}");
    }

    #[test]
    fn hostile_strings_are_refused_with_the_right_reason() {
        let good = sample().0.to_string();
        let cases: &[(String, TokenError)] = &[
            (String::new(), TokenError::Empty),
            (" \n\t".into(), TokenError::Empty),
            ("x".repeat(MAX_TOKEN_INPUT + 1), TokenError::TooLong { len: MAX_TOKEN_INPUT + 1 }),
            (format!("K10{}", &good[3..]), TokenError::WrongPrefix),
            ("ej1".to_string() + &good[3..], TokenError::WrongPrefix),
            (good.replace("::", ":"), TokenError::Malformed("no `::` after the fingerprint")),
            (good.replace('.', ""), TokenError::Malformed("no `.` between id and secret")),
            (good.replacen("ab", "", 1), TokenError::BadLength { field: "fingerprint", expected: 32, found: 30 }),
            (good.replace("0001", "zz01"), TokenError::BadHex { field: "id" }),
            (good.replace(".0809", ".08"), TokenError::BadLength { field: "secret", expected: 32, found: 30 }),
            (good.clone() + "00", TokenError::BadLength { field: "secret", expected: 32, found: 34 }),
            (good.replace("1617", "16é"), TokenError::BadHex { field: "secret" }),
            (good.replace("0607.", "0607.."), TokenError::BadLength { field: "secret", expected: 32, found: 33 }),
            ("EJ1".into(), TokenError::Malformed("no `::` after the fingerprint")),
            ("EJ1::.".into(), TokenError::BadLength { field: "fingerprint", expected: 32, found: 0 }),
        ];
        for (input, expected) in cases {
            assert_eq!(JoinToken::parse(input).as_ref(), Err(expected), "{input:?}");
        }
    }

    #[test]
    fn errors_never_quote_the_input() {
        let good = sample().0.to_string();
        let err = JoinToken::parse(&good.replace("0001", "zz01")).unwrap_err();
        assert!(!err.to_string().contains("0809"), "{err}");
    }

    #[test]
    fn parse_survives_arbitrary_bytes() {
        // A cheap deterministic sweep over short strings of token-ish characters: no panic, ever.
        let alphabet: &[char] = &['E', 'J', '1', ':', '.', 'a', '0', 'é', ' ', '\0'];
        let mut s = String::new();
        for n in 0u32..20_000 {
            s.clear();
            s.push_str("EJ1");
            let mut k = n;
            while k > 0 {
                s.push(alphabet[(k % alphabet.len() as u32) as usize]);
                k /= alphabet.len() as u32;
            }
            let _ = JoinToken::parse(&s);
        }
    }
}
