//! The personal access token format: `uhp_`, 32 random bytes as 43 base62
//! digits, and the CRC-32 of those 43 characters as 6 base62 digits
//! (alphabet `0-9A-Za-z`, most significant digit first, zero-padded), so
//! that secret scanners can recognise one and a typo is caught unread.

use userhub_domain::ports::PERSONAL_TOKEN_PREFIX;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY: usize = 43;
const CHECKSUM: usize = 6;

/// `bytes` (a big-endian number) in exactly `width` base62 digits.
fn base62(bytes: &[u8], width: usize) -> String {
    let mut number = bytes.to_vec();
    let mut digits = vec![b'0'; width];
    for digit in digits.iter_mut().rev() {
        let mut remainder = 0_u32;
        for byte in &mut number {
            let value = (remainder << 8) | u32::from(*byte);
            *byte = u8::try_from(value / 62).unwrap_or(u8::MAX);
            remainder = value % 62;
        }
        *digit = ALPHABET[remainder as usize];
    }
    digits.into_iter().map(char::from).collect()
}

fn checksum(body: &str) -> String {
    base62(&crc32fast::hash(body.as_bytes()).to_be_bytes(), CHECKSUM)
}

pub(super) fn format(random: &[u8; 32]) -> String {
    let body = base62(random, BODY);
    let check = checksum(&body);
    format!("{PERSONAL_TOKEN_PREFIX}{body}{check}")
}

pub(super) fn is_well_formed(presented: &str) -> bool {
    let Some(rest) = presented.strip_prefix(PERSONAL_TOKEN_PREFIX) else {
        return false;
    };
    if rest.len() != BODY + CHECKSUM || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let (body, check) = rest.split_at(BODY);
    checksum(body) == check
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_has_its_form_and_a_changed_character_breaks_its_checksum() {
        let token = format(&[0xAB; 32]);
        assert_eq!(token.len(), 4 + BODY + CHECKSUM);
        assert!(is_well_formed(&token));
        let mut typo = token.clone().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        assert!(!is_well_formed(
            &String::from_utf8(typo).unwrap_or_default()
        ));
        assert!(!is_well_formed("uhp_short"));
        assert!(!is_well_formed(&token.replace("uhp_", "ghp_")));
    }

    #[test]
    fn base62_is_fixed_width_and_big_endian() {
        assert_eq!(base62(&[0; 32], BODY), "0".repeat(BODY));
        assert_eq!(base62(&[0, 0, 0, 61], 6), "00000z");
        assert_eq!(base62(&[0, 0, 0, 62], 6), "000010");
        assert_eq!(base62(&[0xFF; 32], BODY).len(), BODY);
    }
}
