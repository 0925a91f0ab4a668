//! The passkey use cases' rules, with mocks of the ports.
#![allow(clippy::unwrap_used)]

use mockall::predicate::eq;
use secrecy::{ExposeSecret, SecretString};

use super::*;
use crate::model::{
    CeremonyState, PasskeyCredential, PasswordHash, Scopes, SessionId, TokenGrant, TokenHash,
    TokenId,
};
use crate::ports::{CeremonyError, CeremonyStart, CheckedAssertion};
use crate::services::auth::test_support::{caller, config, session};
use crate::services::fixtures::{Mocks, NOW, superuser, user};

fn service(mocks: Mocks) -> PasskeyService {
    PasskeyService::new(mocks.ports().for_passkeys(), config(Duration::ZERO))
}

fn key(owner: UserId) -> (Passkey, PasskeyCredential) {
    (
        Passkey {
            id: PasskeyId::generate(),
            user_id: owner,
            name: PasskeyName::numbered(1),
            created_at: NOW,
            last_used_at: None,
            backed_up: false,
        },
        PasskeyCredential {
            credential_id: "cred".into(),
            counter: 5,
            data: "{}".into(),
        },
    )
}

/// A live sign-in ceremony behind token `t`, and an answer naming
/// credential `cred` of `owner` (`handle` the user handle it carries).
fn signing_in(mocks: &mut Mocks, owner: &crate::model::User, handle: Option<UserId>) {
    mocks
        .tokens
        .expect_hash_token()
        .returning(|t| TokenHash::new(t.into()));
    mocks
        .passkeys
        .expect_take_ceremony()
        .with(
            eq(TokenHash::new("t".into())),
            eq(CeremonyKind::Login),
            eq(NOW),
        )
        .returning(|_, _, _| Ok(Some((None, CeremonyState("state".into())))));
    mocks
        .ceremonies
        .expect_identify()
        .returning(move |_| Ok(("cred".into(), handle)));
    let (passkey, credential) = key(owner.id);
    let owner = owner.clone();
    mocks
        .passkeys
        .expect_find_by_credential()
        .with(eq("cred"))
        .returning(move |_| Ok(Some((passkey.clone(), credential.clone(), owner.clone()))));
}

#[tokio::test]
async fn adding_a_passkey_needs_the_password_of_an_account_that_has_one() {
    let ada = user("ada");
    let err = service(Mocks::default())
        .registration_options(&caller(&ada), None, &ClientInfo::default())
        .await
        .unwrap_err();
    assert!(matches!(err, PasskeyError::PasswordRequired), "{err:?}");

    let mut mocks = Mocks::default();
    mocks.throttle_permissive();
    mocks.password_matches(false);
    let err = service(mocks)
        .registration_options(
            &caller(&ada),
            Some(&SecretString::from("wrong")),
            &ClientInfo::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PasskeyError::WrongPassword), "{err:?}");
}

#[tokio::test]
async fn a_personal_access_token_adds_no_passkey() {
    let ada = user("ada");
    let grant = TokenGrant {
        id: TokenId::generate(),
        scopes: Scopes::default(),
        last_used_at: None,
    };
    let by_token = Authenticated {
        user: ada,
        credential: crate::services::Credential::Token(grant),
    };
    let err = service(Mocks::default())
        .registration_options(
            &by_token,
            Some(&SecretString::from("pw")),
            &ClientInfo::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PasskeyError::NotWithToken), "{err:?}");
}

#[tokio::test]
async fn an_account_without_a_password_adds_one_only_soon_after_signing_in() {
    let ada = crate::model::User {
        password_hash: PasswordHash::none(),
        ..user("ada")
    };
    let me = caller(&ada);
    let mut old = session(&ada);
    old.id = me.session_id().unwrap();
    old.created_at = NOW - Duration::minutes(11);
    let mut mocks = Mocks::default();
    mocks
        .sessions
        .expect_list_live_for_user()
        .returning(move |_, _| Ok(vec![old.clone()]));
    let err = service(mocks)
        .registration_options(&me, None, &ClientInfo::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PasskeyError::ReauthenticationRequired),
        "{err:?}"
    );

    // Within the window: options, with the ceremony kept for the caller.
    let mut fresh = session(&ada);
    fresh.id = me.session_id().unwrap();
    let mut mocks = Mocks::default();
    mocks
        .sessions
        .expect_list_live_for_user()
        .returning(move |_, _| Ok(vec![fresh.clone()]));
    mocks
        .passkeys
        .expect_credentials()
        .returning(|_| Ok(vec![]));
    mocks
        .ceremonies
        .expect_start_registration()
        .returning(|_, _| {
            Ok(CeremonyStart {
                options: "{\"publicKey\":{}}".into(),
                state: CeremonyState("s".into()),
            })
        });
    mocks.issues_refresh_tokens("ceremony");
    let owner = ada.id;
    mocks
        .passkeys
        .expect_begin_ceremony()
        .withf(move |_, kind, user, state, expires| {
            *kind == CeremonyKind::Register
                && *user == Some(owner)
                && state.0 == "s"
                && *expires == NOW + CEREMONY_TTL
        })
        .times(1)
        .returning(|_, _, _, _, _| Ok(()));
    let options = service(mocks)
        .registration_options(&me, None, &ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(options.token.expose_secret(), "ceremony");
}

#[tokio::test]
async fn a_registration_token_of_another_user_finishes_nothing() {
    let ada = user("ada");
    let mut mocks = Mocks::default();
    mocks
        .tokens
        .expect_hash_token()
        .returning(|t| TokenHash::new(t.into()));
    mocks
        .passkeys
        .expect_take_ceremony()
        .returning(|_, _, _| Ok(Some((Some(UserId::generate()), CeremonyState("s".into())))));
    mocks.ceremonies.expect_finish_registration().times(0);
    let err = service(mocks)
        .register(&caller(&ada), "t", "{}", None, &ClientInfo::default())
        .await
        .unwrap_err();
    assert!(matches!(err, PasskeyError::Invalid), "{err:?}");
}

#[tokio::test]
async fn a_passkey_added_is_stored_with_its_event_and_mailed_with_an_undo_link() {
    let ada = user("ada");
    let owner = ada.id;
    let mut mocks = Mocks::default();
    mocks
        .tokens
        .expect_hash_token()
        .returning(|t| TokenHash::new(t.into()));
    mocks
        .passkeys
        .expect_take_ceremony()
        .returning(move |_, _, _| Ok(Some((Some(owner), CeremonyState("s".into())))));
    mocks
        .ceremonies
        .expect_registered_id()
        .returning(|_| Ok("new".into()));
    mocks
        .passkeys
        .expect_find_by_credential()
        .with(eq("new"))
        .returning(|_| Ok(None));
    mocks
        .ceremonies
        .expect_finish_registration()
        .returning(|_, _| {
            Ok(crate::ports::RegisteredCredential {
                credential: PasskeyCredential {
                    credential_id: "new".into(),
                    counter: 0,
                    data: "{}".into(),
                },
                backed_up: true,
            })
        });
    mocks.passkeys.expect_list().returning(|_| Ok(vec![]));
    mocks
        .passkeys
        .expect_create()
        .withf(move |new, max, event| {
            new.passkey.name.as_str() == "Passkey 1"
                && new.passkey.backed_up
                && *max == MAX_PASSKEYS_PER_USER
                && event.kind == AuditKind::PasskeyAdded
                && event.subject_id == Some(owner)
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    mocks
        .mail
        .expect_notify()
        .withf(move |notice, _, _| {
            notice.kind == MailKind::PasskeyAdded
                && notice.user_id == owner
                && matches!(notice.target, Some(UndoTarget::Passkey { .. }))
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    let key = service(mocks)
        .register(&caller(&ada), "t", "{}", None, &ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(key.name.as_str(), "Passkey 1");
}

#[tokio::test]
async fn a_credential_registered_already_is_409_before_any_other_check() {
    let ada = user("ada");
    let owner = ada.id;
    let mut mocks = Mocks::default();
    mocks
        .tokens
        .expect_hash_token()
        .returning(|t| TokenHash::new(t.into()));
    mocks
        .passkeys
        .expect_take_ceremony()
        .returning(move |_, _, _| Ok(Some((Some(owner), CeremonyState("s".into())))));
    mocks
        .ceremonies
        .expect_registered_id()
        .returning(|_| Ok("cred".into()));
    let (passkey, credential) = key(owner);
    let holder = ada.clone();
    mocks
        .passkeys
        .expect_find_by_credential()
        .returning(move |_| Ok(Some((passkey.clone(), credential.clone(), holder.clone()))));
    mocks.ceremonies.expect_finish_registration().times(0);
    let err = service(mocks)
        .register(&caller(&ada), "t", "{}", None, &ClientInfo::default())
        .await
        .unwrap_err();
    assert!(matches!(err, PasskeyError::AlreadyRegistered), "{err:?}");
}

#[tokio::test]
async fn a_counter_that_went_back_refuses_the_sign_in_and_is_audited() {
    let ada = user("ada");
    let mut mocks = Mocks::default();
    signing_in(&mut mocks, &ada, Some(ada.id));
    mocks
        .ceremonies
        .expect_finish_login()
        .returning(|_, _, _| Err(CeremonyError::CounterRegressed));
    let subject = ada.id;
    mocks
        .audit
        .expect_record()
        .withf(move |e| {
            e.kind == AuditKind::PasskeyCounterRegressed && e.subject_id == Some(subject)
        })
        .times(1)
        .returning(|_| Ok(()));
    mocks.passkeys.expect_record_use().times(0);
    mocks.sessions.expect_create().times(0);
    let err = service(mocks)
        .login("t", "{}", &ClientInfo::default())
        .await
        .unwrap_err();
    assert!(matches!(err, PasskeyLoginError::Invalid), "{err:?}");
}

#[tokio::test]
async fn an_inactive_user_or_a_foreign_user_handle_signs_nobody_in() {
    let inactive = crate::model::User {
        is_active: false,
        ..user("ada")
    };
    let mut mocks = Mocks::default();
    signing_in(&mut mocks, &inactive, None);
    mocks.ceremonies.expect_finish_login().times(0);
    let err = service(mocks)
        .login("t", "{}", &ClientInfo::default())
        .await;
    assert!(matches!(err, Err(PasskeyLoginError::Invalid)));

    let ada = user("ada");
    let mut mocks = Mocks::default();
    signing_in(&mut mocks, &ada, Some(UserId::generate()));
    mocks.ceremonies.expect_finish_login().times(0);
    let err = service(mocks)
        .login("t", "{}", &ClientInfo::default())
        .await;
    assert!(matches!(err, Err(PasskeyLoginError::Invalid)));
}

#[tokio::test]
async fn a_sign_in_records_the_counter_then_opens_a_passkey_session() {
    let ada = user("ada");
    let mut mocks = Mocks::default();
    signing_in(&mut mocks, &ada, Some(ada.id));
    mocks.ceremonies.expect_finish_login().returning(|_, _, _| {
        Ok(CheckedAssertion {
            credential: PasskeyCredential {
                credential_id: "cred".into(),
                counter: 6,
                data: "{}".into(),
            },
            backed_up: true,
        })
    });
    // Conditional on the counter read (5).
    mocks
        .passkeys
        .expect_record_use()
        .withf(|_, seen, credential, backed_up, at| {
            *seen == 5 && credential.counter == 6 && *backed_up && *at == NOW
        })
        .times(1)
        .returning(|_, _, _, _, _| Ok(true));
    mocks.issues_refresh_tokens("refresh");
    mocks.issues_access_tokens();
    let hash = ada.password_hash.clone();
    mocks
        .sessions
        .expect_create()
        .withf(move |session, proven, event| {
            session.proof == crate::model::SignInProof::PASSKEY
                && *proven == hash
                && event.kind == AuditKind::LoginSucceeded
                && event.details.method.as_deref() == Some("passkey")
        })
        .times(1)
        .returning(|_, _, _| Ok(true));
    mocks.users.expect_record_login().returning(|_, _| Ok(()));
    let tokens = service(mocks)
        .login("t", "{}", &ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(tokens.user_id, ada.id);
    assert_eq!(crate::model::SignInProof::PASSKEY.amr(), vec!["pop", "mfa"]);
}

#[tokio::test]
async fn a_passkey_answers_a_second_step_only_for_the_challenges_user() {
    let ada = user("ada");
    let pending = crate::model::PendingLogin {
        user: ada.id,
        password_hash: ada.password_hash.clone(),
        federated: false,
    };
    // The ceremony under the mfa_token was begun for someone else.
    let mut mocks = Mocks::default();
    mocks
        .tokens
        .expect_hash_token()
        .returning(|t| TokenHash::new(t.into()));
    mocks
        .passkeys
        .expect_take_ceremony()
        .with(
            eq(TokenHash::new("m".into())),
            eq(CeremonyKind::SecondFactor),
            eq(NOW),
        )
        .returning(|_, _, _| Ok(Some((Some(UserId::generate()), CeremonyState("s".into())))));
    let answer = pending.clone();
    mocks
        .mfa
        .expect_attempt_challenge()
        .returning(move |_, _, _| Ok(Some(answer.clone())));
    mocks.ceremonies.expect_finish_second_factor().times(0);
    let err = service(mocks)
        .login_second_factor("m", "{}", &ClientInfo::default())
        .await;
    assert!(matches!(err, Err(PasskeyLoginError::Invalid)));

    // Its own: the challenge is spent and the session says pwd + pop.
    let mut mocks = Mocks::default();
    mocks
        .tokens
        .expect_hash_token()
        .returning(|t| TokenHash::new(t.into()));
    let owner = ada.id;
    mocks
        .passkeys
        .expect_take_ceremony()
        .returning(move |_, _, _| Ok(Some((Some(owner), CeremonyState("s".into())))));
    mocks
        .mfa
        .expect_attempt_challenge()
        .returning(move |_, _, _| Ok(Some(pending.clone())));
    mocks
        .ceremonies
        .expect_identify()
        .returning(|_| Ok(("cred".into(), None)));
    let (passkey, credential) = key(ada.id);
    let found = ada.clone();
    mocks
        .passkeys
        .expect_find_by_credential()
        .returning(move |_| Ok(Some((passkey.clone(), credential.clone(), found.clone()))));
    mocks
        .ceremonies
        .expect_finish_second_factor()
        .returning(|_, _, _| {
            Ok(CheckedAssertion {
                credential: PasskeyCredential {
                    credential_id: "cred".into(),
                    counter: 6,
                    data: "{}".into(),
                },
                backed_up: false,
            })
        });
    mocks
        .passkeys
        .expect_record_use()
        .returning(|_, _, _, _, _| Ok(true));
    mocks
        .mfa
        .expect_spend_challenge()
        .times(1)
        .returning(|_, _| Ok(true));
    mocks.issues_refresh_tokens("refresh");
    mocks.issues_access_tokens();
    mocks
        .sessions
        .expect_create()
        .withf(|session, _, _| session.proof.amr() == vec!["pwd", "pop"])
        .times(1)
        .returning(|_, _, _| Ok(true));
    mocks.users.expect_record_login().returning(|_, _| Ok(()));
    service(mocks)
        .login_second_factor("m", "{}", &ClientInfo::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn only_a_superuser_removes_someone_elses_passkeys_and_their_sessions_end() {
    let bob = user("bob");
    let err = service(Mocks::default())
        .remove_all(&caller(&user("ada")), bob.id, &ClientInfo::default())
        .await
        .unwrap_err();
    assert!(matches!(err, PasskeyError::Forbidden), "{err:?}");

    let mut mocks = Mocks::default();
    mocks.finds_by_id(&bob);
    mocks
        .passkeys
        .expect_remove_all()
        .with(eq(bob.id), mockall::predicate::always())
        .times(1)
        .returning(|_, _| Ok(2));
    mocks
        .sessions
        .expect_revoke_all_for_user()
        .with(eq(bob.id), eq(None::<SessionId>), eq(NOW), eq(None))
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    service(mocks)
        .remove_all(&caller(&superuser("root")), bob.id, &ClientInfo::default())
        .await
        .unwrap();
}
