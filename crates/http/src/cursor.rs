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
    pub fn seal<P: Position>(&self, caller: UserId, binding: &str, position: &P) -> String {
        let payload = position.encode();
        let binding = format!("{}{binding}", P::KIND);
        let tag = self.tag(caller, &binding, &payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN])
        )
    }

    /// The position in `raw`, if this server sealed it for `caller` and `binding`.
    #[must_use]
    pub fn open<P: Position>(&self, caller: UserId, binding: &str, raw: &str) -> Option<P> {
        let (payload, tag) = raw.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let binding = format!("{}{binding}", P::KIND);
        self.tag(caller, &binding, &payload)
            .verify_truncated_left(&tag)
            .ok()
            .filter(|()| tag.len() == TAG_LEN)?;
        P::decode(&payload)
    }
}

/// What a cursor can hold: a position in one kind of listing.
pub trait Position: Sized {
    /// Sealed with the binding, so that a cursor of one kind of listing
    /// never opens as another's.
    const KIND: &'static str;
    /// The position as the cursor carries it.
    fn encode(&self) -> Vec<u8>;
    /// The position a cursor carried, if it is one.
    fn decode(bytes: &[u8]) -> Option<Self>;
}

/// A place in a user listing.
impl Position for UserCursor {
    const KIND: &'static str = "";

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&Payload::from(self)).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Payload>(bytes)
            .ok()?
            .try_into()
            .ok()
    }
}

/// The last audit event of a page (ids are time-ordered).
impl Position for uuid::Uuid {
    const KIND: &'static str = "events\n";

    fn encode(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        uuid::Uuid::from_slice(bytes).ok()
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
        let sealed = key.seal(ada, "own", &id);
        assert_eq!(key.open(ada, "own", &sealed), Some(id));
        assert_eq!(key.open::<uuid::Uuid>(bob, "own", &sealed), None);
        assert_eq!(key.open::<uuid::Uuid>(ada, "all", &sealed), None);
        // A user listing's cursor is no event cursor, and the reverse.
        let user_cursor = key.seal(ada, "own", &position());
        assert_eq!(key.open::<uuid::Uuid>(ada, "own", &user_cursor), None);
        assert_eq!(key.open::<UserCursor>(ada, "events\nown", &sealed), None);
        assert_eq!(key.open::<UserCursor>(ada, "own", &sealed), None);
    }

    #[test]
    fn a_cursor_opens_only_for_its_caller_and_listing() {
        let key = CursorKey::derive(b"secret");
        let (ada, bob) = (UserId::generate(), UserId::generate());
        let position = position();
        let sealed = key.seal(ada, "username", &position);
        assert_eq!(key.open(ada, "username", &sealed), Some(position));
        assert_eq!(key.open::<UserCursor>(bob, "username", &sealed), None);
        assert_eq!(key.open::<UserCursor>(ada, "-username", &sealed), None);
        assert_eq!(
            CursorKey::derive(b"other").open::<UserCursor>(ada, "username", &sealed),
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
        let open = |raw: &str| key.open::<UserCursor>(ada, "username", raw);
        assert_eq!(open(&format!("{forged}.{tag}")), None);
        assert_eq!(open(&format!("{payload}.{}", &tag[..4])), None);
        assert_eq!(open(payload), None);
        assert_eq!(open("0193b5e2-7c1a-7d3e-9f00-5a1b2c3d4e5f"), None);
    }
}
