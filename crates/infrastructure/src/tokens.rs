//! [`TokenIssuer`] with signed JWT access tokens and opaque refresh tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use userhub_domain::PortError;
use userhub_domain::model::{RefreshTokenHash, SessionId, UserId};
use userhub_domain::ports::{AccessClaims, AccessToken, RefreshToken, TokenError, TokenIssuer};
use uuid::Uuid;

/// The only `typ` an access token may carry.
const ACCESS: &str = "access";

/// How access tokens are signed.
#[derive(Clone, Debug)]
pub enum SigningKey {
    /// HS256 with a shared secret of at least 32 bytes.
    Hmac(SecretString),
    /// RS256 with an RSA key pair (PEM).
    Rsa {
        /// PKCS#1 or PKCS#8 private key.
        private_pem: SecretString,
        /// SPKI public key, published at the JWKS endpoint.
        public_pem: String,
    },
    /// EdDSA with an Ed25519 key pair (PEM).
    Ed25519 {
        /// PKCS#8 private key.
        private_pem: SecretString,
        /// SPKI public key, published at the JWKS endpoint.
        public_pem: String,
    },
}

/// Settings of the token issuer.
#[derive(Clone, Debug)]
pub struct JwtSettings {
    /// The signing key and so the algorithm.
    pub signing: SigningKey,
    /// Key of the keyed hash that derives successor refresh tokens.
    pub refresh_secret: SecretString,
    /// `iss` written and required.
    pub issuer: String,
    /// `aud` written and required.
    pub audience: String,
    /// Access-token lifetime.
    pub access_token_ttl: Duration,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    sid: Uuid,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: Uuid,
    iss: String,
    aud: String,
    typ: String,
}

/// Signs access tokens with one algorithm, and accepts only that one.
#[derive(Clone)]
pub struct JwtTokenIssuer {
    algorithm: Algorithm,
    kid: Option<String>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    jwks: JwkSet,
    settings: JwtSettings,
}

impl JwtTokenIssuer {
    /// Parses the keys once; the public key, if any, is also published as
    /// a JWK.
    ///
    /// # Errors
    /// A key that does not parse.
    pub fn new(settings: JwtSettings) -> Result<Self, jsonwebtoken::errors::Error> {
        let (algorithm, encoding, decoding, public_jwk) = match &settings.signing {
            SigningKey::Hmac(secret) => {
                let key = secret.expose_secret().as_bytes();
                (
                    Algorithm::HS256,
                    EncodingKey::from_secret(key),
                    DecodingKey::from_secret(key),
                    None,
                )
            }
            SigningKey::Rsa {
                private_pem,
                public_pem,
            } => {
                let encoding = EncodingKey::from_rsa_pem(private_pem.expose_secret().as_bytes())?;
                let jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256)?;
                (
                    Algorithm::RS256,
                    encoding,
                    DecodingKey::from_rsa_pem(public_pem.as_bytes())?,
                    Some(jwk),
                )
            }
            SigningKey::Ed25519 {
                private_pem,
                public_pem,
            } => {
                let encoding = EncodingKey::from_ed_pem(private_pem.expose_secret().as_bytes())?;
                let decoding = DecodingKey::from_ed_pem(public_pem.as_bytes())?;
                (
                    Algorithm::EdDSA,
                    encoding,
                    decoding,
                    Some(ed25519_jwk(public_pem)?),
                )
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = settings.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "sub", "iss", "aud"]);
        // Public keys are published with a kid (their RFC 7638 thumbprint) and `use: sig`.
        let public_jwk = public_jwk.map(|mut jwk| {
            let kid = jwk.thumbprint(ThumbprintHash::SHA256);
            jwk.common.key_id = Some(kid);
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            jwk
        });
        let kid = public_jwk
            .as_ref()
            .and_then(|jwk| jwk.common.key_id.clone());
        let jwks = JwkSet {
            keys: public_jwk.into_iter().collect(),
        };
        Ok(Self {
            algorithm,
            kid,
            encoding,
            decoding,
            validation,
            jwks,
            settings,
        })
    }

    /// The public keys that verify this issuer's tokens, as a JWK Set
    /// (empty for HS256: a shared secret is never published).
    #[must_use]
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }
}

/// The JWK of an Ed25519 public key: the last 32 bytes of its SPKI DER.
/// Sliced by hand because `Jwk::from_encoding_key` of jsonwebtoken 10.4
/// reaches `unimplemented!()` for the Ed family (a panic at start-up), and
/// an Ed25519 SPKI is a fixed 12-byte prefix and the 32-byte key.
fn ed25519_jwk(public_pem: &str) -> Result<Jwk, jsonwebtoken::errors::Error> {
    use base64::engine::general_purpose::STANDARD;
    let invalid =
        || jsonwebtoken::errors::Error::from(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat);
    let body: String = public_pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(body.trim()).map_err(|_| invalid())?;
    let raw = der
        .get(der.len().checked_sub(32).ok_or_else(invalid)?..)
        .ok_or_else(invalid)?;
    Ok(Jwk {
        common: CommonParameters {
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(raw),
        }),
    })
}

impl std::fmt::Debug for JwtTokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtTokenIssuer")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer for JwtTokenIssuer {
    fn issue_access_token(
        &self,
        user: UserId,
        session: SessionId,
        now: OffsetDateTime,
    ) -> Result<AccessToken, TokenError> {
        let iat = now.unix_timestamp();
        let expires_in = self.settings.access_token_ttl.whole_seconds();
        let claims = Claims {
            sub: user.as_uuid(),
            sid: session.as_uuid(),
            iat,
            nbf: iat,
            exp: iat + expires_in,
            jti: Uuid::new_v4(),
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            typ: ACCESS.to_owned(),
        };
        let mut header = Header::new(self.algorithm);
        header.kid.clone_from(&self.kid);
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| TokenError::Port(PortError::unexpected(e)))?;
        Ok(AccessToken { token, expires_in })
    }

    fn verify_access_token(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        if data.claims.typ != ACCESS {
            return Err(TokenError::Invalid(format!("typ is {:?}", data.claims.typ)));
        }
        Ok(AccessClaims {
            user_id: UserId::from_uuid(data.claims.sub),
            session_id: SessionId::from_uuid(data.claims.sid),
        })
    }

    fn new_refresh_token(&self) -> Result<RefreshToken, PortError> {
        let mut random = [0_u8; 32];
        getrandom::fill(&mut random).map_err(|e| PortError::unexpected(e.to_string()))?;
        let secret = URL_SAFE_NO_PAD.encode(random);
        let hash = self.hash_refresh_token(&secret);
        Ok(RefreshToken {
            secret: SecretString::from(secret),
            hash,
        })
    }

    fn successor_refresh_token(&self, presented: &str) -> RefreshToken {
        // Keyed and domain-separated: the same token always has the same
        // successor, and only the holder of the key can compute it.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(
            self.settings.refresh_secret.expose_secret().as_bytes(),
        )
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(b"userhub refresh-token successor\0");
        mac.update(presented.as_bytes());
        let secret = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let hash = self.hash_refresh_token(&secret);
        RefreshToken {
            secret: SecretString::from(secret),
            hash,
        }
    }

    fn hash_refresh_token(&self, token: &str) -> RefreshTokenHash {
        RefreshTokenHash::new(format!("{:x}", Sha256::digest(token.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn issuer() -> JwtTokenIssuer {
        issuer_with(SigningKey::Hmac(SecretString::from("k".repeat(32))))
    }

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../../tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn rsa() -> SigningKey {
        SigningKey::Rsa {
            private_pem: fixture("rsa-private.pem").into(),
            public_pem: fixture("rsa-public.pem"),
        }
    }

    fn ed25519() -> SigningKey {
        SigningKey::Ed25519 {
            private_pem: fixture("ed25519-private.pem").into(),
            public_pem: fixture("ed25519-public.pem"),
        }
    }

    fn issuer_with(signing: SigningKey) -> JwtTokenIssuer {
        JwtTokenIssuer::new(JwtSettings {
            signing,
            refresh_secret: SecretString::from("r".repeat(32)),
            issuer: "userhub".into(),
            audience: "userhub-api".into(),
            access_token_ttl: Duration::minutes(30),
            leeway_seconds: 5,
        })
        .unwrap()
    }

    fn sign(claims: &serde_json::Value, alg: Algorithm, key: &[u8]) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).unwrap()
    }

    fn claims(overrides: &[(&str, serde_json::Value)]) -> serde_json::Value {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = serde_json::json!({
            "sub": Uuid::now_v7(), "sid": Uuid::now_v7(), "iat": now, "nbf": now, "exp": now + 600,
            "jti": Uuid::new_v4(), "iss": "userhub", "aud": "userhub-api", "typ": "access"
        });
        for (key, value) in overrides {
            claims[*key] = value.clone();
        }
        claims
    }

    #[test]
    fn an_issued_token_verifies_to_its_user_and_session() {
        let issuer = issuer();
        let (user, session) = (UserId::generate(), SessionId::generate());
        let token = issuer
            .issue_access_token(user, session, OffsetDateTime::now_utc())
            .unwrap();
        assert_eq!(token.expires_in, 1800);
        let verified = issuer.verify_access_token(&token.token).unwrap();
        assert_eq!((verified.user_id, verified.session_id), (user, session));
    }

    #[test]
    fn tokens_failing_any_check_are_refused() {
        let key = "k".repeat(32);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let cases = [
            (
                "expired",
                sign(
                    &claims(&[("exp", (now - 60).into())]),
                    Algorithm::HS256,
                    key.as_bytes(),
                ),
            ),
            (
                "not yet valid",
                sign(
                    &claims(&[("nbf", (now + 60).into())]),
                    Algorithm::HS256,
                    key.as_bytes(),
                ),
            ),
            (
                "wrong issuer",
                sign(
                    &claims(&[("iss", "evil".into())]),
                    Algorithm::HS256,
                    key.as_bytes(),
                ),
            ),
            (
                "wrong audience",
                sign(
                    &claims(&[("aud", "other".into())]),
                    Algorithm::HS256,
                    key.as_bytes(),
                ),
            ),
            (
                "refresh type",
                sign(
                    &claims(&[("typ", "refresh".into())]),
                    Algorithm::HS256,
                    key.as_bytes(),
                ),
            ),
            (
                "other key",
                sign(&claims(&[]), Algorithm::HS256, "x".repeat(32).as_bytes()),
            ),
            (
                "other algorithm",
                sign(&claims(&[]), Algorithm::HS512, key.as_bytes()),
            ),
            ("missing nbf", {
                let mut c = claims(&[]);
                c.as_object_mut().unwrap().remove("nbf");
                sign(&c, Algorithm::HS256, key.as_bytes())
            }),
        ];
        let issuer = issuer();
        for (case, token) in cases {
            assert!(
                matches!(
                    issuer.verify_access_token(&token),
                    Err(TokenError::Invalid(_))
                ),
                "{case}"
            );
        }
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims(&[]).to_string());
        let token = format!("{header}.{body}.");
        assert!(matches!(
            issuer().verify_access_token(&token),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn a_successor_is_fixed_by_its_predecessor_and_the_key() {
        let issuer = issuer();
        let first = issuer.new_refresh_token().unwrap();
        let a = issuer.successor_refresh_token(first.secret.expose_secret());
        let b = issuer.successor_refresh_token(first.secret.expose_secret());
        assert_eq!(a.secret.expose_secret(), b.secret.expose_secret());
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(a.secret.expose_secret())
                .unwrap()
                .len(),
            32
        );
        assert_ne!(a.secret.expose_secret(), first.secret.expose_secret());
        let other_key = JwtTokenIssuer::new(JwtSettings {
            refresh_secret: SecretString::from("z".repeat(32)),
            ..issuer.settings.clone()
        })
        .unwrap();
        let c = other_key.successor_refresh_token(first.secret.expose_secret());
        assert_ne!(a.secret.expose_secret(), c.secret.expose_secret());
    }

    #[test]
    fn refresh_tokens_carry_256_random_bits_and_are_stored_hashed() {
        let issuer = issuer();
        let (a, b) = (
            issuer.new_refresh_token().unwrap(),
            issuer.new_refresh_token().unwrap(),
        );
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(a.secret.expose_secret())
                .unwrap()
                .len(),
            32
        );
        assert_ne!(a.secret.expose_secret(), b.secret.expose_secret());
        assert_eq!(a.hash.as_str().len(), 64);
        assert_eq!(issuer.hash_refresh_token(a.secret.expose_secret()), a.hash);
        assert!(!a.hash.as_str().contains(a.secret.expose_secret()));
    }

    #[test]
    fn asymmetric_tokens_verify_with_the_published_key_and_carry_its_kid() {
        for (signing, alg, kty) in [
            (rsa(), Algorithm::RS256, "RSA"),
            (ed25519(), Algorithm::EdDSA, "OKP"),
        ] {
            let issuer = issuer_with(signing);
            let (user, session) = (UserId::generate(), SessionId::generate());
            let token = issuer
                .issue_access_token(user, session, OffsetDateTime::now_utc())
                .unwrap()
                .token;
            assert_eq!(issuer.verify_access_token(&token).unwrap().user_id, user);
            let header = jsonwebtoken::decode_header(&token).unwrap();
            let jwk = &issuer.jwks().keys[0];
            assert_eq!(
                (header.alg, header.kid.as_ref()),
                (alg, jwk.common.key_id.as_ref())
            );
            assert_eq!(serde_json::to_value(jwk).unwrap()["kty"], kty);
            let from_jwks = DecodingKey::from_jwk(jwk).unwrap();
            assert!(jsonwebtoken::decode::<Claims>(&token, &from_jwks, &issuer.validation).is_ok());
        }
        assert!(
            issuer().jwks().keys.is_empty(),
            "a shared secret is never published"
        );
    }

    #[test]
    fn an_hs256_token_keyed_with_the_public_key_is_refused() {
        let issuer = issuer_with(rsa());
        let forged = sign(
            &claims(&[]),
            Algorithm::HS256,
            fixture("rsa-public.pem").as_bytes(),
        );
        assert!(matches!(
            issuer.verify_access_token(&forged),
            Err(TokenError::Invalid(_))
        ));
        let ed = issuer_with(ed25519());
        let forged = sign(
            &claims(&[]),
            Algorithm::HS256,
            fixture("ed25519-public.pem").as_bytes(),
        );
        assert!(matches!(
            ed.verify_access_token(&forged),
            Err(TokenError::Invalid(_))
        ));
    }
}
