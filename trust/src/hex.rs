//! Lowercase hex for printable fingerprints and tokens. Decoding accepts either case and fixed lengths only,
//! so a caller learns exactly which field was wrong.

use core::fmt;

/// Writes `bytes` as lowercase hex.
pub(crate) fn write(f: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// Why a hex field did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HexError {
    /// The field has `found` characters; `N` bytes need `2 * N`.
    Length { found: usize },
    /// A character outside `0-9a-fA-F`.
    Digit,
}

/// Decodes exactly `N` bytes from `2 * N` hex digits.
pub(crate) fn decode<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    let digits = s.as_bytes();
    if digits.len() != 2 * N {
        return Err(HexError::Length { found: digits.len() });
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Ok(out)
}

fn nibble(c: u8) -> Result<u8, HexError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(HexError::Digit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn round_trips_and_accepts_upper_case() {
        let mut s = String::new();
        write(&mut s, &[0x00, 0xab, 0xff]).unwrap();
        assert_eq!(s, "00abff");
        assert_eq!(decode::<3>("00abff"), Ok([0x00, 0xab, 0xff]));
        assert_eq!(decode::<3>("00ABFF"), Ok([0x00, 0xab, 0xff]));
    }

    #[test]
    fn refuses_wrong_length_and_digits() {
        assert_eq!(decode::<2>("abc"), Err(HexError::Length { found: 3 }));
        assert_eq!(decode::<2>(""), Err(HexError::Length { found: 0 }));
        assert_eq!(decode::<2>("zz00"), Err(HexError::Digit));
        // Multi-byte UTF-8 counts in bytes and never splits into a "digit".
        assert_eq!(decode::<1>("é"), Err(HexError::Digit));
        assert_eq!(decode::<2>("0é0"), Err(HexError::Digit));
    }
}
