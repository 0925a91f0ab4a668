//! [`SecondFactor`]: TOTP codes with `totp-rs` (RFC 6238: SHA-1, six
//! digits, 30-second steps) and secrets sealed with ChaCha20-Poly1305.
//!
//! A sealed secret is `1 ‖ key id (4 bytes) ‖ nonce (12) ‖ ciphertext`; the
//! key id (the start of the key's SHA-256) picks the key that opens it, so
//! that secrets sealed under the previous key still open after a rotation.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use totp_rs::{Algorithm, Secret, TOTP};
use userhub_domain::PortError;
use userhub_domain::model::{SealedSecret, TotpSecret};
use userhub_domain::ports::SecondFactor;

/// Seconds per step.
const STEP: u64 = 30;
/// Digits per code.
const DIGITS: usize = 6;
/// Random bytes per secret (RFC 4226 recommends 160 bits).
const SECRET_BYTES: usize = 20;
/// Random bytes per recovery code: 56 bits, twelve base32 characters.
const RECOVERY_BYTES: usize = 7;
/// The format of a sealed secret.
const VERSION: u8 = 1;

/// A 256-bit key that seals secrets.
#[derive(Clone)]
pub struct SealingKey {
    id: [u8; 4],
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingKey").finish_non_exhaustive()
    }
}

impl SealingKey {
    /// A key from 32 bytes.
    #[must_use]
    pub fn new(bytes: &[u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        Self {
            id: [digest[0], digest[1], digest[2], digest[3]],
            cipher: ChaCha20Poly1305::new(Key::from_slice(bytes)),
        }
    }

    /// A key from 64 hexadecimal digits (`openssl rand -hex 32`).
    ///
    /// # Errors
    /// Anything else.
    pub fn from_hex(hex: &str) -> Result<Self, String> {
        let hex = hex.trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("expected 64 hexadecimal digits (openssl rand -hex 32)".into());
        }
        let mut bytes = [0_u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| "expected hexadecimal digits".to_owned())?;
        }
        Ok(Self::new(&bytes))
    }

    /// A key derived from a secret the server keeps (development only).
    #[must_use]
    pub fn derive(secret: &SecretString) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"userhub totp sealing key\0");
        hasher.update(secret.expose_secret().as_bytes());
        Self::new(&hasher.finalize().into())
    }
}

/// Seals secrets the server must read back (TOTP secrets, webhook
/// signing secrets) with the current key, and opens what the current or
/// the previous key sealed.
#[derive(Clone, Debug)]
pub struct Sealer {
    current: SealingKey,
    previous: Option<SealingKey>,
}

impl Sealer {
    /// Sealing with `current`, still opening what `previous` sealed.
    #[must_use]
    pub const fn new(current: SealingKey, previous: Option<SealingKey>) -> Self {
        Self { current, previous }
    }

    /// `plain`, sealed.
    ///
    /// # Errors
    /// The system's random source failed.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, PortError> {
        let nonce = random::<12>()?;
        let ciphertext = self
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain)
            .map_err(|_| PortError::unexpected("sealing a secret failed"))?;
        let mut sealed = Vec::with_capacity(1 + 4 + 12 + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&self.current.id);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// What `sealed` holds.
    ///
    /// # Errors
    /// An unknown format, a key that is neither the current nor the
    /// previous one, or a sealed text that was changed.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, PortError> {
        if sealed.len() < 17 || sealed[0] != VERSION {
            return Err(PortError::unexpected(
                "a sealed secret of an unknown format",
            ));
        }
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|key| key.id == sealed[1..5])
            .ok_or_else(|| {
                PortError::unexpected(
                    "a secret sealed with a key that is neither MFA_ENCRYPTION_KEY nor MFA_PREVIOUS_ENCRYPTION_KEY",
                )
            })?;
        key.cipher
            .decrypt(Nonce::from_slice(&sealed[5..17]), &sealed[17..])
            .map_err(|_| PortError::unexpected("a sealed secret does not open"))
    }
}

/// TOTP with sealed secrets.
#[derive(Clone, Debug)]
pub struct TotpSecondFactor {
    issuer: String,
    sealer: Sealer,
}

impl TotpSecondFactor {
    /// Codes for accounts of `issuer` (the name authenticator apps show),
    /// sealing with `current` and still opening what `previous` sealed.
    #[must_use]
    pub fn new(issuer: &str, current: SealingKey, previous: Option<SealingKey>) -> Self {
        Self {
            issuer: issuer.to_owned(),
            sealer: Sealer::new(current, previous),
        }
    }

    /// What seals its secrets, to seal others' with the same keys.
    #[must_use]
    pub fn sealer(&self) -> Sealer {
        self.sealer.clone()
    }

    fn totp(secret: &TotpSecret) -> Option<TOTP> {
        let bytes = Secret::Encoded(secret.expose().to_owned())
            .to_bytes()
            .ok()?;
        TOTP::new(Algorithm::SHA1, DIGITS, 0, STEP, bytes).ok()
    }
}

fn random<const N: usize>() -> Result<[u8; N], PortError> {
    let mut bytes = [0_u8; N];
    getrandom::fill(&mut bytes).map_err(PortError::unexpected)?;
    Ok(bytes)
}

fn base32(bytes: &[u8]) -> String {
    match Secret::Raw(bytes.to_vec()).to_encoded() {
        Secret::Encoded(text) => text,
        Secret::Raw(_) => String::new(),
    }
}

/// Percent-encodes a URI component (RFC 3986 unreserved characters stay).
fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl SecondFactor for TotpSecondFactor {
    fn new_secret(&self) -> Result<TotpSecret, PortError> {
        let bytes = random::<SECRET_BYTES>()?;
        Ok(TotpSecret::new(SecretString::from(base32(&bytes))))
    }

    fn uri(&self, secret: &TotpSecret, account: &str) -> String {
        let issuer = escape(&self.issuer);
        format!(
            "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
            escape(account),
            secret.expose()
        )
    }

    fn seal(&self, secret: &TotpSecret) -> Result<SealedSecret, PortError> {
        self.sealer
            .seal(secret.expose().as_bytes())
            .map(SealedSecret)
    }

    fn open(&self, sealed: &SealedSecret) -> Result<TotpSecret, PortError> {
        let plain = self.sealer.open(&sealed.0)?;
        let text = String::from_utf8(plain).map_err(PortError::unexpected)?;
        Ok(TotpSecret::new(SecretString::from(text)))
    }

    fn matching_step(&self, secret: &TotpSecret, code: &str, now: OffsetDateTime) -> Option<i64> {
        let totp = Self::totp(secret)?;
        let now = u64::try_from(now.unix_timestamp()).ok()?;
        let step = now / STEP;
        [step.saturating_sub(1), step, step + 1]
            .into_iter()
            .find(|s| totp.check(code, s * STEP))
            .and_then(|s| i64::try_from(s).ok())
    }

    fn new_recovery_code(&self) -> Result<SecretString, PortError> {
        let code = base32(&random::<RECOVERY_BYTES>()?).to_ascii_lowercase();
        let (a, b) = code.split_at(code.len() / 2);
        Ok(SecretString::from(format!("{a}-{b}")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn factor() -> TotpSecondFactor {
        TotpSecondFactor::new("UserHub", SealingKey::new(&[7; 32]), None)
    }

    #[test]
    fn a_sealed_secret_opens_with_its_key_only() {
        let old = factor();
        let secret = old.new_secret().unwrap();
        let sealed = old.seal(&secret).unwrap();
        assert_eq!(old.open(&sealed).unwrap().expose(), secret.expose());
        let rotated = TotpSecondFactor::new(
            "UserHub",
            SealingKey::new(&[8; 32]),
            Some(SealingKey::new(&[7; 32])),
        );
        assert_eq!(rotated.open(&sealed).unwrap().expose(), secret.expose());
        let other = TotpSecondFactor::new("UserHub", SealingKey::new(&[9; 32]), None);
        assert!(other.open(&sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.0.last_mut().unwrap() ^= 1;
        assert!(old.open(&tampered).is_err());
    }

    #[test]
    fn keys_are_64_hex_digits() {
        assert!(SealingKey::from_hex(&"ab".repeat(32)).is_ok());
        assert!(SealingKey::from_hex("abc").is_err());
        assert!(SealingKey::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn recovery_codes_are_twelve_base32_characters_with_a_dash() {
        let code = factor().new_recovery_code().unwrap();
        let code = code.expose_secret();
        assert_eq!(code.len(), 13, "{code}");
        assert_eq!(&code[6..7], "-");
    }

    #[test]
    fn the_uri_names_the_issuer_and_the_escaped_account() {
        let f = factor();
        let secret = TotpSecret::new(SecretString::from("JBSWY3DPEHPK3PXP".to_owned()));
        assert_eq!(
            f.uri(&secret, "ada+x@example.com"),
            "otpauth://totp/UserHub:ada%2Bx%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=UserHub&algorithm=SHA1&digits=6&period=30"
        );
    }
}
