use time::OffsetDateTime;

use super::{SessionId, UserId};

/// The SHA-256 of an opaque secret token, hex-encoded: the only form in
/// which refresh tokens, reset, verification, revert and undo tokens,
/// recovery codes and login challenges are stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    /// Wraps a hex digest.
    #[must_use]
    pub fn new(hex: String) -> Self {
        Self(hex)
    }

    /// The hex digest.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The address a client is counted under: an IPv4 address itself (an
/// IPv4-mapped IPv6 address is that IPv4 address), and an IPv6 address's
/// /64 network, which one subscriber usually holds whole.
#[must_use]
pub fn network_of(ip: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv6Addr};
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1_u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// Where a request came from, as recorded on a session or an audit event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The `User-Agent` header, shortened.
    pub user_agent: Option<String>,
    /// The peer's IP address.
    pub ip: Option<String>,
    /// The request's id (sessions do not keep it).
    pub request_id: Option<String>,
}

impl ClientInfo {
    /// Longest user agent kept.
    pub const MAX_USER_AGENT: usize = 256;

    /// Builds client info, cutting the user agent to a storable length and
    /// dropping characters PostgreSQL cannot store.
    #[must_use]
    pub fn new(user_agent: Option<&str>, ip: Option<String>) -> Self {
        let user_agent = user_agent.map(|ua| {
            ua.chars()
                .filter(|c| !c.is_control())
                .take(Self::MAX_USER_AGENT)
                .collect()
        });
        Self {
            user_agent,
            ip,
            request_id: None,
        }
    }

    /// The address failed logins and per-address limits are counted
    /// under: see [`network_of`]. An address that does not parse is its
    /// own key.
    #[must_use]
    pub fn address_key(&self) -> Option<String> {
        let ip = self.ip.as_deref()?;
        Some(
            ip.parse()
                .map_or_else(|_| ip.to_owned(), |ip| network_of(ip).to_string()),
        )
    }

    /// The same, tagged with the request's id.
    #[must_use]
    pub fn with_request_id(mut self, id: &str) -> Self {
        self.request_id = Some(id.to_owned());
        self
    }
}

/// What a session's sign-in proved; its access tokens say so in `amr`
/// (RFC 8176).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignInProof {
    /// Through a provider (`fed`) rather than the password (`pwd`).
    pub federated: bool,
    /// A second factor too (`otp`, or `pop` when it was a passkey).
    pub second_factor: bool,
    /// A passkey (`pop`): alone, it is two factors already.
    pub passkey: bool,
}

impl SignInProof {
    /// The password alone.
    pub const PASSWORD: Self = Self {
        federated: false,
        second_factor: false,
        passkey: false,
    };

    /// A passkey with user verification, alone.
    pub const PASSKEY: Self = Self {
        federated: false,
        second_factor: false,
        passkey: true,
    };

    /// The `amr` values: `pwd` or `fed`, then `otp` after a code; a
    /// passkey alone is `pop` and `mfa`, a passkey as the second step `pop`.
    #[must_use]
    pub fn amr(self) -> Vec<&'static str> {
        if self.passkey && !self.second_factor {
            return vec!["pop", "mfa"];
        }
        let first = if self.federated { "fed" } else { "pwd" };
        let mut amr = vec![first];
        if self.second_factor {
            amr.push(if self.passkey { "pop" } else { "otp" });
        }
        amr
    }
}

/// A session to be stored at login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSession {
    /// The session's id (the `sid` of its access tokens).
    pub id: SessionId,
    /// Whose session it is.
    pub user_id: UserId,
    /// Hash of the first refresh token.
    pub refresh_token_hash: TokenHash,
    /// Login time.
    pub created_at: OffsetDateTime,
    /// When the refresh token stops working.
    pub expires_at: OffsetDateTime,
    /// Where the login came from.
    pub client: ClientInfo,
    /// What the login proved (its tokens' `amr`).
    pub proof: SignInProof,
}

/// A stored session: one chain of refresh tokens from one login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The session's id.
    pub id: SessionId,
    /// Whose session it is.
    pub user_id: UserId,
    /// Login time.
    pub created_at: OffsetDateTime,
    /// Last login or refresh.
    pub last_used_at: OffsetDateTime,
    /// When the current refresh token stops working.
    pub expires_at: OffsetDateTime,
    /// When it was ended, if it was.
    pub revoked_at: Option<OffsetDateTime>,
    /// Where the login came from.
    pub client: ClientInfo,
    /// What the login proved.
    pub proof: SignInProof,
}

impl Session {
    /// Neither revoked nor expired at `now`.
    #[must_use]
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// A live session as listed to its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSummary {
    /// The session.
    pub session: Session,
    /// Whether the caller's own access token belongs to it.
    pub current: bool,
}

#[cfg(test)]
mod network_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let key = |ip: &str| ClientInfo::new(None, Some(ip.to_owned())).address_key();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff::9"));
        assert_eq!(key("2001:db8:1:2::1").unwrap(), "2001:db8:1:2::");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7").unwrap(), "192.0.2.7");
        assert_eq!(key("192.0.2.7").unwrap(), "192.0.2.7");
        assert_eq!(key("not an address").unwrap(), "not an address");
        assert_eq!(ClientInfo::default().address_key(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::SignInProof;

    #[test]
    fn amr_says_what_the_sign_in_proved() {
        let proof = |federated, second_factor, passkey| SignInProof {
            federated,
            second_factor,
            passkey,
        };
        assert_eq!(SignInProof::PASSWORD.amr(), ["pwd"]);
        assert_eq!(proof(false, true, false).amr(), ["pwd", "otp"]);
        assert_eq!(proof(true, false, false).amr(), ["fed"]);
        assert_eq!(proof(true, true, false).amr(), ["fed", "otp"]);
        assert_eq!(SignInProof::PASSKEY.amr(), ["pop", "mfa"]);
        assert_eq!(proof(false, true, true).amr(), ["pwd", "pop"]);
        assert_eq!(proof(true, true, true).amr(), ["fed", "pop"]);
    }
}
