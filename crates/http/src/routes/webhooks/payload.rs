//! The body of a delivery: the API's own shapes, so a receiver parses an
//! event as `/api/audit-events` shows it and a user as `/api/users` does.

use serde::Serialize;
use userhub_domain::model::{UserView, WebhookMessage};

use crate::dto::{UserResponse, rfc3339};
use crate::routes::audit::AuditEventResponse;

#[derive(Serialize)]
struct Body {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: String,
    data: Data,
}

#[derive(Serialize)]
struct Data {
    /// The event without the client's address and user agent.
    event: serde_json::Value,
    /// The subject as a superuser sees it now, or `null`.
    user: Option<UserResponse>,
}

/// `{"type", "timestamp", "data": {"event", "user"}}` as JSON.
#[must_use]
pub fn webhook_body(message: &WebhookMessage) -> String {
    let event = &message.event;
    let mut shown = serde_json::to_value(AuditEventResponse::from(event.clone()))
        .unwrap_or(serde_json::Value::Null);
    if let Some(fields) = shown.as_object_mut() {
        fields.remove("ip");
        fields.remove("user_agent");
    }
    let body = Body {
        kind: event.kind.as_str(),
        timestamp: rfc3339(event.at),
        data: Data {
            event: shown,
            user: message.user.clone().map(|u| UserView::own(u).into()),
        },
    };
    serde_json::to_string(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use userhub_domain::model::{AuditEvent, AuditKind, ClientInfo};
    use userhub_domain::services::fixtures::user;

    use super::*;

    #[test]
    fn the_body_carries_the_event_without_the_client_and_the_subject_in_full() {
        let ada = user("ada");
        let client = ClientInfo::new(Some("curl/8"), Some("203.0.113.7".into()));
        let event = AuditEvent::new(AuditKind::UserRegistered, ada.created_at, &client).own(ada.id);
        let body: serde_json::Value = serde_json::from_str(&webhook_body(&WebhookMessage {
            event: event.clone(),
            user: Some(ada.clone()),
        }))
        .unwrap();
        assert_eq!(body["type"], "user.registered");
        assert_eq!(body["data"]["event"]["id"], event.id.to_string());
        assert!(body["data"]["event"].get("ip").is_none());
        assert!(body["data"]["event"].get("user_agent").is_none());
        assert_eq!(body["data"]["user"]["email"], ada.email.as_str());
        let none: serde_json::Value =
            serde_json::from_str(&webhook_body(&WebhookMessage { event, user: None })).unwrap();
        assert!(none["data"]["user"].is_null());
    }
}
