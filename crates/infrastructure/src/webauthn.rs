//! [`PasskeyCeremonies`] on `webauthn-rs` (the kanidm project's): every
//! WebAuthn check is the library's; this adapter only asks for what the
//! contract wants where the library's passkey defaults differ (a resident
//! key, a modal rather than conditional sign-in), and turns its types into
//! JSON text for the domain.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use userhub_domain::PortError;
use userhub_domain::model::{CeremonyState, PasskeyCredential, User, UserId};
use userhub_domain::ports::{
    CeremonyError, CeremonyStart, CheckedAssertion, PasskeyCeremonies, RegisteredCredential,
};
use webauthn_rs::prelude::{
    AuthenticationResult, CredentialID, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, WebauthnError,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};
use webauthn_rs_proto::ResidentKeyRequirement;

/// Who the passkeys are for: the relying party.
#[derive(Clone, Debug)]
pub struct WebauthnSettings {
    /// The RP ID: a domain every origin is or is under.
    pub rp_id: String,
    /// Shown by the browser while registering.
    pub rp_name: String,
    /// The origins a ceremony may come from.
    pub origins: Vec<Url>,
}

impl WebauthnSettings {
    /// Checks the settings as the library will use them.
    ///
    /// # Errors
    /// A one-line reason: no origin, or an origin outside the RP ID.
    pub fn validate(&self) -> Result<(), String> {
        WebauthnCeremonies::new(self).map(|_| ())
    }
}

/// The ceremonies, with one relying party's settings.
#[derive(Debug)]
pub struct WebauthnCeremonies {
    webauthn: Webauthn,
}

impl WebauthnCeremonies {
    /// The ceremonies of `settings`.
    ///
    /// # Errors
    /// A one-line reason when an origin is not the RP ID or under it.
    pub fn new(settings: &WebauthnSettings) -> Result<Self, String> {
        let (first, rest) = settings
            .origins
            .split_first()
            .ok_or("WEBAUTHN_ORIGINS must name at least one origin")?;
        for origin in &settings.origins {
            let host = origin.host_str().unwrap_or_default();
            if host != settings.rp_id && !host.ends_with(&format!(".{}", settings.rp_id)) {
                return Err(format!(
                    "WEBAUTHN_ORIGINS: {origin} is not on WEBAUTHN_RP_ID {} or a subdomain of it",
                    settings.rp_id
                ));
            }
        }
        let mut builder = WebauthnBuilder::new(&settings.rp_id, first)
            .map_err(|err| format!("WEBAUTHN_RP_ID {}: {err}", settings.rp_id))?
            .rp_name(&settings.rp_name);
        for origin in rest {
            builder = builder.append_allowed_origin(origin);
        }
        let webauthn = builder
            .build()
            .map_err(|err| format!("WEBAUTHN_ORIGINS: {err}"))?;
        Ok(Self { webauthn })
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, PortError> {
    serde_json::to_string(value).map_err(PortError::unexpected)
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, CeremonyError> {
    serde_json::from_str(text).map_err(|err| CeremonyError::Invalid(err.to_string()))
}

/// The stored form of a passkey: its id, counter and the library's JSON.
fn stored(passkey: &Passkey) -> Result<PasskeyCredential, CeremonyError> {
    let data = serde_json::to_value(passkey).map_err(|e| CeremonyError::Invalid(e.to_string()))?;
    let counter = data["cred"]["counter"].as_u64().unwrap_or(0);
    Ok(PasskeyCredential {
        credential_id: URL_SAFE_NO_PAD.encode::<&[u8]>(passkey.cred_id().as_ref()),
        counter: u32::try_from(counter).unwrap_or(u32::MAX),
        data: data.to_string(),
    })
}

/// Whether the library's JSON of a passkey says it is backed up.
fn backed_up(credential: &PasskeyCredential) -> bool {
    serde_json::from_str::<serde_json::Value>(&credential.data)
        .ok()
        .and_then(|v| v["cred"]["backup_state"].as_bool())
        .unwrap_or(false)
}

/// A verified assertion of `credential`: the user verified, its stored
/// form with the new counter.
fn checked(
    credential: &PasskeyCredential,
    result: &AuthenticationResult,
) -> Result<CheckedAssertion, CeremonyError> {
    if !result.user_verified() {
        return Err(CeremonyError::Invalid("user not verified".to_owned()));
    }
    let mut passkey: Passkey = from_json(&credential.data)?;
    if passkey.update_credential(result).is_none() {
        return Err(CeremonyError::Invalid(
            "another credential answered".to_owned(),
        ));
    }
    Ok(CheckedAssertion {
        backed_up: result.backup_state(),
        credential: stored(&passkey)?,
    })
}

fn refused(err: WebauthnError) -> CeremonyError {
    match err {
        WebauthnError::CredentialPossibleCompromise => CeremonyError::CounterRegressed,
        other => CeremonyError::Invalid(other.to_string()),
    }
}

impl PasskeyCeremonies for WebauthnCeremonies {
    fn start_registration(
        &self,
        user: &User,
        existing: &[PasskeyCredential],
    ) -> Result<CeremonyStart, PortError> {
        let exclude = existing
            .iter()
            .filter_map(|c| URL_SAFE_NO_PAD.decode(&c.credential_id).ok())
            .collect::<Vec<CredentialID>>();
        let (mut options, state) = self
            .webauthn
            .start_passkey_registration(
                user.id.as_uuid(),
                user.username.as_str(),
                user.full_name
                    .as_ref()
                    .map_or(user.username.as_str(), |n| n.as_str()),
                Some(exclude),
            )
            .map_err(PortError::unexpected)?;
        // The library asks for a resident key only where it must; a
        // usernameless sign-in needs one on every authenticator.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        Ok(CeremonyStart {
            options: to_json(&options)?,
            state: CeremonyState(to_json(&state)?),
        })
    }

    fn registered_id(&self, response: &str) -> Result<String, CeremonyError> {
        let response: RegisterPublicKeyCredential = from_json(response)?;
        Ok(URL_SAFE_NO_PAD.encode(&response.raw_id))
    }

    fn finish_registration(
        &self,
        state: &CeremonyState,
        response: &str,
    ) -> Result<RegisteredCredential, CeremonyError> {
        let state: PasskeyRegistration = from_json(&state.0)?;
        let response: RegisterPublicKeyCredential = from_json(response)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&response, &state)
            .map_err(refused)?;
        let credential = stored(&passkey)?;
        Ok(RegisteredCredential {
            backed_up: backed_up(&credential),
            credential,
        })
    }

    fn start_login(&self) -> Result<CeremonyStart, PortError> {
        let (mut options, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(PortError::unexpected)?;
        // A sign-in button, not autofill: the browser asks at once.
        options.mediation = None;
        Ok(CeremonyStart {
            options: to_json(&options)?,
            state: CeremonyState(to_json(&state)?),
        })
    }

    fn identify(&self, response: &str) -> Result<(String, Option<UserId>), CeremonyError> {
        let response: PublicKeyCredential = from_json(response)?;
        let credential_id = URL_SAFE_NO_PAD.encode(response.get_credential_id());
        let handle = response
            .get_user_unique_id()
            .map(|h| {
                uuid::Uuid::from_slice(h)
                    .map(UserId::from_uuid)
                    .map_err(|_| CeremonyError::Invalid("user handle is no user id".to_owned()))
            })
            .transpose()?;
        Ok((credential_id, handle))
    }

    fn start_second_factor(
        &self,
        credentials: &[PasskeyCredential],
    ) -> Result<CeremonyStart, PortError> {
        let passkeys = credentials
            .iter()
            .map(|c| serde_json::from_str::<Passkey>(&c.data).map_err(PortError::unexpected))
            .collect::<Result<Vec<_>, _>>()?;
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(PortError::unexpected)?;
        Ok(CeremonyStart {
            options: to_json(&options)?,
            state: CeremonyState(to_json(&state)?),
        })
    }

    fn finish_second_factor(
        &self,
        state: &CeremonyState,
        response: &str,
        credential: &PasskeyCredential,
    ) -> Result<CheckedAssertion, CeremonyError> {
        let state: PasskeyAuthentication = from_json(&state.0)?;
        let response: PublicKeyCredential = from_json(response)?;
        let result = self
            .webauthn
            .finish_passkey_authentication(&response, &state)
            .map_err(refused)?;
        checked(credential, &result)
    }

    fn finish_login(
        &self,
        state: &CeremonyState,
        response: &str,
        credential: &PasskeyCredential,
    ) -> Result<CheckedAssertion, CeremonyError> {
        let state: DiscoverableAuthentication = from_json(&state.0)?;
        let response: PublicKeyCredential = from_json(response)?;
        let passkey: Passkey = from_json(&credential.data)?;
        let result = self
            .webauthn
            .finish_discoverable_authentication_v2(&response, state, &passkey)
            .map_err(refused)?;
        checked(credential, &result)
    }
}
