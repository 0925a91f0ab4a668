//! The signed `state` of a sign-in, bound to the browser's cookie, and the
//! values derived from that cookie (the PKCE verifier, the `nonce`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use userhub_domain::model::{OAuthFlow, OAuthState, UserId};

/// The server's key for states and derived values.
pub(super) struct StateKey(pub(super) Vec<u8>);

/// The `state` as signed: short keys, as it travels in a URL.
#[derive(Serialize, Deserialize)]
struct StatePayload {
    /// Id.
    i: String,
    /// Provider.
    p: String,
    /// Flow.
    f: String,
    /// User of an associate flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<uuid::Uuid>,
    /// Expiry, Unix seconds.
    e: i64,
    /// SHA-256 of the browser's cookie.
    b: String,
}

impl StateKey {
    fn mac(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        #[allow(clippy::expect_used)] // HMAC takes a key of any length
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// A value derived from the cookie and the state: the PKCE verifier or
    /// the `nonce`. Only who holds the cookie can compute it.
    pub(super) fn derived(&self, purpose: &str, binding: &str, state_id: &str) -> String {
        let bytes = self
            .mac(&[purpose.as_bytes(), binding.as_bytes(), state_id.as_bytes()])
            .finalize()
            .into_bytes();
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The signed `state` for `state`, bound to the cookie `binding`.
    pub(super) fn sign(&self, state: &OAuthState, binding: &str) -> String {
        let payload = StatePayload {
            i: state.id.clone(),
            p: state.provider.clone(),
            f: state.flow.as_str().to_owned(),
            u: state.user_id.map(|id| id.as_uuid()),
            e: state.expires_at.unix_timestamp(),
            b: URL_SAFE_NO_PAD.encode(Sha256::digest(binding.as_bytes())),
        };
        #[allow(clippy::expect_used)] // a struct of strings always serialises
        let json = serde_json::to_vec(&payload).expect("serialisable");
        let body = URL_SAFE_NO_PAD.encode(json);
        let tag = URL_SAFE_NO_PAD.encode(
            self.mac(&[b"state", body.as_bytes()])
                .finalize()
                .into_bytes(),
        );
        format!("{body}.{tag}")
    }

    /// The state `raw` carries, if this key signed it for the cookie `binding`.
    pub(super) fn open(&self, raw: &str, binding: &str) -> Option<OAuthState> {
        let (body, tag) = raw.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac(&[b"state", body.as_bytes()])
            .verify_slice(&tag)
            .ok()?;
        let payload: StatePayload =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        let bound = URL_SAFE_NO_PAD.encode(Sha256::digest(binding.as_bytes()));
        // Both are hashes of public length: comparing them leaks nothing of the cookie.
        if payload.b != bound {
            return None;
        }
        let flow = OAuthFlow::parse(&payload.f)?;
        Some(OAuthState {
            id: payload.i,
            provider: payload.p,
            flow,
            user_id: payload.u.map(UserId::from_uuid),
            expires_at: OffsetDateTime::from_unix_timestamp(payload.e).ok()?,
        })
    }
}
