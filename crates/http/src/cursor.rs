//! Opaque listing cursors: the position of the last row of a page, sealed
//! with an HMAC over the caller and the listing's order and filters, so
//! that a client can only hand back a cursor this server issued to it for
//! the same listing. A forged, altered or foreign cursor is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;
use userhub_domain::model::UserId;
use userhub_domain::ports::{SortValue, UserCursor};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the MAC kept in a cursor: 128 bits cannot be guessed.
const TAG_LEN: usize = 16;

/// The key cursors are sealed with.
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

impl CursorKey {
    /// Derives the cursor key from a server secret, so that every instance
    /// sharing the secret accepts the others' cursors.
    #[must_use]
    pub fn derive(secret: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(b"userhub listing cursor v1");
        Self(mac.finalize().into_bytes().into())
    }

    fn tag(&self, caller: UserId, binding: &str, payload: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(caller.as_uuid().as_bytes());
        mac.update(&(binding.len() as u64).to_be_bytes());
        mac.update(binding.as_bytes());
        mac.update(payload);
        mac
    }

    /// The cursor `caller` gets for `position` in the listing `binding` names.
    #[must_use]
    pub fn seal(&self, caller: UserId, binding: &str, position: &UserCursor) -> String {
        let payload = serde_json::to_vec(&Payload::from(position)).unwrap_or_default();
        let tag = self.tag(caller, binding, &payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN])
        )
    }

    /// The position in `raw`, if this server sealed it for `caller` and `binding`.
    #[must_use]
    pub fn open(&self, caller: UserId, binding: &str, raw: &str) -> Option<UserCursor> {
        let (payload, tag) = raw.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.tag(caller, binding, &payload)
            .verify_truncated_left(&tag)
            .ok()
            .filter(|()| tag.len() == TAG_LEN)?;
        serde_json::from_slice::<Payload>(&payload)
            .ok()?
            .try_into()
            .ok()
    }
}

impl CursorKey {
    /// The cursor `caller` gets for the audit event `id` in the listing
    /// `binding` names.
    #[must_use]
    pub fn seal_event(&self, caller: UserId, binding: &str, id: uuid::Uuid) -> String {
        let payload = id.as_bytes();
        let tag = self
            .tag(caller, &format!("events\n{binding}"), payload)
            .finalize()
            .into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN])
        )
    }

    /// The event id in `raw`, if this server sealed it for `caller` and `binding`.
    #[must_use]
    pub fn open_event(&self, caller: UserId, binding: &str, raw: &str) -> Option<uuid::Uuid> {
        let (payload, tag) = raw.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.tag(caller, &format!("events\n{binding}"), &payload)
            .verify_truncated_left(&tag)
            .ok()
            .filter(|()| tag.len() == TAG_LEN)?;
        uuid::Uuid::from_slice(&payload).ok()
    }
}

/// What a cursor carries: the sort value (nanoseconds for times) and the id.
#[derive(Serialize, Deserialize)]
struct Payload {
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    i: uuid::Uuid,
}

impl From<&UserCursor> for Payload {
    fn from(cursor: &UserCursor) -> Self {
        let (t, s) = match &cursor.value {
            SortValue::Time(at) => (Some(at.unix_timestamp_nanos().to_string()), None),
            SortValue::Text(text) => (None, Some(text.clone())),
        };
        Self {
            t,
            s,
            i: cursor.id.as_uuid(),
        }
    }
}

impl TryFrom<Payload> for UserCursor {
    type Error = ();

    fn try_from(p: Payload) -> Result<Self, ()> {
        let value = match (p.t, p.s) {
            (Some(nanos), None) => {
                let nanos: i128 = nanos.parse().map_err(drop)?;
                SortValue::Time(OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(drop)?)
            }
            (None, Some(text)) => SortValue::Text(text),
            _ => return Err(()),
        };
        Ok(Self {
            value,
            id: UserId::from_uuid(p.i),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn position() -> UserCursor {
        UserCursor {
            value: SortValue::Text("ada".into()),
            id: UserId::generate(),
        }
    }

    #[test]
    fn an_event_cursor_opens_only_for_its_caller_and_listing() {
        let key = CursorKey::derive(b"secret");
        let (ada, bob) = (UserId::generate(), UserId::generate());
        let id = uuid::Uuid::now_v7();
        let sealed = key.seal_event(ada, "own", id);
        assert_eq!(key.open_event(ada, "own", &sealed), Some(id));
        assert_eq!(key.open_event(bob, "own", &sealed), None);
        assert_eq!(key.open_event(ada, "all", &sealed), None);
        // A user listing's cursor is no event cursor, and the reverse.
        let user_cursor = key.seal(ada, "own", &position());
        assert_eq!(key.open_event(ada, "own", &user_cursor), None);
        assert_eq!(key.open(ada, "events\nown", &sealed), None);
    }

    #[test]
    fn a_cursor_opens_only_for_its_caller_and_listing() {
        let key = CursorKey::derive(b"secret");
        let (ada, bob) = (UserId::generate(), UserId::generate());
        let position = position();
        let sealed = key.seal(ada, "username", &position);
        assert_eq!(key.open(ada, "username", &sealed), Some(position));
        assert_eq!(key.open(bob, "username", &sealed), None);
        assert_eq!(key.open(ada, "-username", &sealed), None);
        assert_eq!(
            CursorKey::derive(b"other").open(ada, "username", &sealed),
            None
        );
    }

    #[test]
    fn an_altered_or_truncated_cursor_is_refused() {
        let key = CursorKey::derive(b"secret");
        let ada = UserId::generate();
        let sealed = key.seal(ada, "username", &position());
        let (payload, tag) = sealed.split_once('.').unwrap();
        let forged =
            URL_SAFE_NO_PAD.encode(br#"{"s":"zz","i":"0193b5e2-7c1a-7d3e-9f00-5a1b2c3d4e5f"}"#);
        assert_eq!(key.open(ada, "username", &format!("{forged}.{tag}")), None);
        assert_eq!(
            key.open(ada, "username", &format!("{payload}.{}", &tag[..4])),
            None
        );
        assert_eq!(key.open(ada, "username", payload), None);
        assert_eq!(
            key.open(ada, "username", "0193b5e2-7c1a-7d3e-9f00-5a1b2c3d4e5f"),
            None
        );
    }
}
