//! [`TokenIssuer`] with signed JWT access tokens and opaque refresh tokens.

mod personal;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, RSAKeyParameters, RSAKeyType,
    ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use userhub_domain::PortError;
use userhub_domain::model::{SessionId, SignInProof, TokenHash, UserId};
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

/// A key that still verifies tokens but never signs: the one signed with
/// before a rotation, kept until the tokens it signed have expired.
#[derive(Clone, Debug)]
pub enum PreviousKey {
    /// The previous HS256 secret.
    Hmac(SecretString),
    /// The previous pair's public key (PEM, same algorithm as the current
    /// pair); published in the JWK Set next to the current one.
    Public(String),
}

/// Settings of the token issuer.
#[derive(Clone, Debug)]
pub struct JwtSettings {
    /// The signing key and so the algorithm.
    pub signing: SigningKey,
    /// The key signed with before a rotation, if any.
    pub previous: Option<PreviousKey>,
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
    /// How the session's login was proven (RFC 8176): `pwd`, and `otp`
    /// after a second factor. Older tokens lack it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    amr: Vec<String>,
}

/// One key that verifies tokens, and its `kid` if it is published.
#[derive(Clone)]
struct Verifier {
    kid: Option<String>,
    decoding: DecodingKey,
}

/// Signs access tokens with one algorithm and key, and accepts only that
/// algorithm, signed by the current key or the previous one.
#[derive(Clone)]
pub struct JwtTokenIssuer {
    algorithm: Algorithm,
    kid: Option<String>,
    encoding: EncodingKey,
    /// The current key first.
    verifiers: Vec<Verifier>,
    validation: Validation,
    jwks: JwkSet,
    settings: JwtSettings,
}

impl JwtTokenIssuer {
    /// Parses the keys once; public keys are also published as JWKs.
    ///
    /// # Errors
    /// A key that does not parse, or a previous key of another kind than
    /// the current one.
    pub fn new(settings: JwtSettings) -> Result<Self, jsonwebtoken::errors::Error> {
        let invalid =
            || jsonwebtoken::errors::Error::from(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat);
        let (algorithm, encoding, current) = match &settings.signing {
            SigningKey::Hmac(secret) => {
                let key = secret.expose_secret().as_bytes();
                (
                    Algorithm::HS256,
                    EncodingKey::from_secret(key),
                    Verifier {
                        kid: None,
                        decoding: DecodingKey::from_secret(key),
                    },
                )
            }
            SigningKey::Rsa {
                private_pem,
                public_pem,
            } => (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(private_pem.expose_secret().as_bytes())?,
                public_verifier(Algorithm::RS256, public_pem)?.0,
            ),
            SigningKey::Ed25519 {
                private_pem,
                public_pem,
            } => (
                Algorithm::EdDSA,
                EncodingKey::from_ed_pem(private_pem.expose_secret().as_bytes())?,
                public_verifier(Algorithm::EdDSA, public_pem)?.0,
            ),
        };
        let mut jwks = Vec::new();
        if let SigningKey::Rsa { public_pem, .. } | SigningKey::Ed25519 { public_pem, .. } =
            &settings.signing
        {
            jwks.push(public_verifier(algorithm, public_pem)?.1);
        }
        let previous = match (&settings.previous, algorithm) {
            (None, _) => None,
            (Some(PreviousKey::Hmac(secret)), Algorithm::HS256) => Some(Verifier {
                kid: None,
                decoding: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            }),
            (Some(PreviousKey::Public(pem)), Algorithm::RS256 | Algorithm::EdDSA) => {
                let (verifier, jwk) = public_verifier(algorithm, pem)?;
                if verifier.kid != current.kid {
                    jwks.push(jwk);
                }
                Some(verifier)
            }
            (Some(_), _) => return Err(invalid()),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = settings.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "sub", "iss", "aud"]);
        Ok(Self {
            algorithm,
            kid: current.kid.clone(),
            encoding,
            verifiers: std::iter::once(current).chain(previous).collect(),
            validation,
            jwks: JwkSet { keys: jwks },
            settings,
        })
    }

    /// The public keys that verify this issuer's tokens, the current one
    /// first, as a JWK Set (empty for HS256: a shared secret is never
    /// published).
    #[must_use]
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }
}

/// The verifier of a public key and its JWK, with its RFC 7638 thumbprint
/// as `kid` and `use: sig`.
fn public_verifier(
    algorithm: Algorithm,
    public_pem: &str,
) -> Result<(Verifier, Jwk), jsonwebtoken::errors::Error> {
    let (decoding, mut jwk) = if algorithm == Algorithm::RS256 {
        (
            DecodingKey::from_rsa_pem(public_pem.as_bytes())?,
            rsa_jwk(public_pem)?,
        )
    } else {
        (
            DecodingKey::from_ed_pem(public_pem.as_bytes())?,
            ed25519_jwk(public_pem)?,
        )
    };
    let kid = jwk.thumbprint(ThumbprintHash::SHA256);
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok((
        Verifier {
            kid: Some(kid),
            decoding,
        },
        jwk,
    ))
}

/// The JWK of an RSA public key (SPKI or PKCS#1 PEM): its modulus and
/// exponent. Read from the public key, so that the previous pair's JWK
/// needs no private key.
fn rsa_jwk(public_pem: &str) -> Result<Jwk, jsonwebtoken::errors::Error> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPublicKey::from_public_key_pem(public_pem)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(public_pem))
        .map_err(|e| jsonwebtoken::errors::ErrorKind::InvalidRsaKey(e.to_string()))?;
    Ok(Jwk {
        common: CommonParameters {
            key_algorithm: Some(KeyAlgorithm::RS256),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::RSA(RSAKeyParameters {
            key_type: RSAKeyType::RSA,
            n: URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
            e: URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        }),
    })
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
        proof: SignInProof,
        now: OffsetDateTime,
    ) -> Result<AccessToken, TokenError> {
        let amr = proof.amr().into_iter().map(str::to_owned).collect();
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
            amr,
        };
        let mut header = Header::new(self.algorithm);
        header.kid.clone_from(&self.kid);
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| TokenError::Port(PortError::unexpected(e)))?;
        Ok(AccessToken { token, expires_in })
    }

    fn verify_access_token(&self, token: &str) -> Result<AccessClaims, TokenError> {
        // A token names its key when it has a published one; otherwise (HS256)
        // the current secret is tried first, then the previous one.
        let kid = jsonwebtoken::decode_header(token)
            .map_err(|e| TokenError::Invalid(e.to_string()))?
            .kid;
        let mut outcome = Err(TokenError::Invalid("no key for this token's kid".into()));
        for verifier in &self.verifiers {
            if kid.is_some() && verifier.kid.is_some() && kid != verifier.kid {
                continue;
            }
            outcome = jsonwebtoken::decode::<Claims>(token, &verifier.decoding, &self.validation)
                .map_err(|e| TokenError::Invalid(e.to_string()));
            if outcome.is_ok() {
                break;
            }
        }
        let data = outcome?;
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
        let hash = self.hash_token(&secret);
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
        let hash = self.hash_token(&secret);
        RefreshToken {
            secret: SecretString::from(secret),
            hash,
        }
    }

    fn hash_token(&self, token: &str) -> TokenHash {
        TokenHash::new(format!("{:x}", Sha256::digest(token.as_bytes())))
    }

    fn new_personal_token(&self) -> Result<RefreshToken, PortError> {
        let mut random = [0_u8; 32];
        getrandom::fill(&mut random).map_err(|e| PortError::unexpected(e.to_string()))?;
        let secret = personal::format(&random);
        let hash = self.hash_token(&secret);
        Ok(RefreshToken {
            secret: SecretString::from(secret),
            hash,
        })
    }

    fn personal_token_hash(&self, presented: &str) -> Option<TokenHash> {
        personal::is_well_formed(presented).then(|| self.hash_token(presented))
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
            previous: None,
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
            .issue_access_token(
                user,
                session,
                SignInProof::PASSWORD,
                OffsetDateTime::now_utc(),
            )
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
        assert_eq!(issuer.hash_token(a.secret.expose_secret()), a.hash);
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
                .issue_access_token(
                    user,
                    session,
                    SignInProof::PASSWORD,
                    OffsetDateTime::now_utc(),
                )
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

    fn rotated(signing: SigningKey, previous: PreviousKey) -> JwtTokenIssuer {
        JwtTokenIssuer::new(JwtSettings {
            previous: Some(previous),
            ..issuer_with(signing).settings
        })
        .unwrap()
    }

    fn token_of(issuer: &JwtTokenIssuer) -> (UserId, String) {
        let user = UserId::generate();
        let token = issuer
            .issue_access_token(
                user,
                SessionId::generate(),
                SignInProof::PASSWORD,
                OffsetDateTime::now_utc(),
            )
            .unwrap()
            .token;
        (user, token)
    }

    #[test]
    fn after_a_rotation_tokens_of_the_previous_key_still_verify_and_new_ones_use_the_new_key() {
        let next_ed = || SigningKey::Ed25519 {
            private_pem: fixture("ed25519-next-private.pem").into(),
            public_pem: fixture("ed25519-next-public.pem"),
        };
        let next_rsa = || SigningKey::Rsa {
            private_pem: fixture("rsa-next-private.pem").into(),
            public_pem: fixture("rsa-next-public.pem"),
        };
        let hmac = |c: &str| SigningKey::Hmac(SecretString::from(c.repeat(32)));
        let cases = [
            (
                hmac("k"),
                hmac("n"),
                PreviousKey::Hmac(SecretString::from("k".repeat(32))),
            ),
            (
                ed25519(),
                next_ed(),
                PreviousKey::Public(fixture("ed25519-public.pem")),
            ),
            (
                rsa(),
                next_rsa(),
                PreviousKey::Public(fixture("rsa-public.pem")),
            ),
        ];
        for (old, new, previous) in cases {
            let before = issuer_with(old);
            let without_previous = issuer_with(new.clone());
            let after = rotated(new, previous);
            let (user, old_token) = token_of(&before);
            assert_eq!(after.verify_access_token(&old_token).unwrap().user_id, user);
            assert!(without_previous.verify_access_token(&old_token).is_err());
            let (user, new_token) = token_of(&after);
            assert_eq!(after.verify_access_token(&new_token).unwrap().user_id, user);
            assert!(before.verify_access_token(&new_token).is_err());
            // Both public keys are published, the current one first.
            let kids: Vec<_> = after
                .jwks()
                .keys
                .iter()
                .map(|k| k.common.key_id.clone())
                .collect();
            let expected: Vec<_> = without_previous
                .jwks()
                .keys
                .iter()
                .chain(&before.jwks().keys)
                .map(|k| k.common.key_id.clone())
                .collect();
            assert_eq!(kids, expected);
        }
    }

    #[test]
    fn a_previous_key_of_another_kind_is_refused_at_start() {
        let settings = JwtSettings {
            previous: Some(PreviousKey::Public(fixture("rsa-public.pem"))),
            ..issuer().settings
        };
        assert!(JwtTokenIssuer::new(settings).is_err());
        let settings = JwtSettings {
            previous: Some(PreviousKey::Public(fixture("ed25519-public.pem"))),
            ..issuer_with(rsa()).settings
        };
        assert!(JwtTokenIssuer::new(settings).is_err());
    }

    #[test]
    fn the_rsa_jwk_read_from_the_public_key_matches_the_private_keys() {
        let encoding = EncodingKey::from_rsa_pem(fixture("rsa-private.pem").as_bytes()).unwrap();
        let from_private = Jwk::from_encoding_key(&encoding, Algorithm::RS256).unwrap();
        let from_public = rsa_jwk(&fixture("rsa-public.pem")).unwrap();
        assert_eq!(from_private.algorithm, from_public.algorithm);
    }
}
