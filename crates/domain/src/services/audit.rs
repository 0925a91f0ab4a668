//! Reading the audit trail: a user's own security events, and every event
//! for a superuser.

use time::{Duration, OffsetDateTime};
use tracing::info;
use uuid::Uuid;

use super::AuditPorts;
use crate::PortError;
use crate::model::{AuditEvent, AuditKind, AuditQuery, User, UserId};

/// Filters and window of a superuser's listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListAuditEvents {
    /// Only events about this user.
    pub user_id: Option<UserId>,
    /// Only events by this user.
    pub actor_id: Option<UserId>,
    /// Only events of this kind.
    pub kind: Option<AuditKind>,
    /// Only events at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only events before this time.
    pub until: Option<OffsetDateTime>,
    /// Continue after the event with this id.
    pub after: Option<Uuid>,
    /// Page size.
    pub limit: u64,
}

/// One page of events, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditPage {
    /// The events.
    pub items: Vec<AuditEvent>,
    /// The last event's id when more follow.
    pub next: Option<Uuid>,
}

/// Why a listing was refused.
#[derive(Debug, thiserror::Error)]
pub enum ListAuditEventsError {
    /// Only superusers read everyone's events.
    #[error("not enough permissions")]
    Forbidden,
    /// The store failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// The audit trail's use cases.
#[derive(Clone)]
pub struct AuditService {
    ports: AuditPorts,
    retention: Duration,
}

impl AuditService {
    /// Keeps events for `retention`.
    #[must_use]
    pub fn new(ports: AuditPorts, retention: Duration) -> Self {
        Self { ports, retention }
    }

    /// The caller's own account's events. The address, user agent and
    /// request id of an event are shown only where the caller caused it
    /// with their own session: where someone else acted (a superuser, an
    /// anonymous login attempt, or whoever followed a mailed link: a
    /// verification, reset or revert link may be opened by anyone it
    /// reached), they are that someone's, not the caller's to read.
    pub async fn own(
        &self,
        caller: &User,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<AuditPage, PortError> {
        let query = AuditQuery {
            subject: Some(caller.id),
            before: after,
            limit,
            ..AuditQuery::default()
        };
        let mut page = self.page(query).await?;
        for event in &mut page.items {
            let by_link = matches!(
                event.kind,
                AuditKind::EmailVerified | AuditKind::PasswordReset | AuditKind::EmailReverted
            );
            if event.actor_id != Some(caller.id) || by_link {
                event.client = crate::model::ClientInfo::default();
            }
        }
        Ok(page)
    }

    /// Every event matching the filters.
    ///
    /// # Errors
    /// [`ListAuditEventsError::Forbidden`] for anyone but a superuser.
    pub async fn list(
        &self,
        actor: &User,
        request: ListAuditEvents,
    ) -> Result<AuditPage, ListAuditEventsError> {
        if !actor.is_superuser {
            return Err(ListAuditEventsError::Forbidden);
        }
        let query = AuditQuery {
            subject: request.user_id,
            actor: request.actor_id,
            kind: request.kind,
            since: request.since,
            until: request.until,
            before: request.after,
            limit: request.limit,
        };
        Ok(self.page(query).await?)
    }

    /// Deletes events older than the retention.
    pub async fn purge(&self) -> Result<u64, PortError> {
        let before = self.ports.clock.now() - self.retention;
        let purged = self.ports.audit.purge(before).await?;
        if purged > 0 {
            info!(purged, "audit events past their retention deleted");
        }
        Ok(purged)
    }

    /// One more than asked is read, so that the last page says it is last.
    async fn page(&self, mut query: AuditQuery) -> Result<AuditPage, PortError> {
        let limit = query.limit;
        query.limit = limit.saturating_add(1);
        let mut items = self.ports.audit.list(&query).await?;
        let more = u64::try_from(items.len()).unwrap_or(u64::MAX) > limit;
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = items.last().filter(|_| more).map(|event| event.id);
        Ok(AuditPage { items, next })
    }
}

#[cfg(test)]
mod tests {
    use mockall::predicate::eq;

    use super::*;
    use crate::model::{AuditKind, ClientInfo};
    use crate::services::fixtures::{Mocks, NOW, user};

    fn event(kind: AuditKind, actor: Option<UserId>, subject: UserId) -> AuditEvent {
        let client =
            ClientInfo::new(Some("agent"), Some("203.0.113.9".into())).with_request_id("r");
        let mut event = AuditEvent::new(kind, NOW, &client).about(subject);
        event.actor_id = actor;
        event
    }

    #[tokio::test]
    async fn own_events_hide_where_someone_else_acted_from() {
        let me = user("ada");
        let admin = UserId::generate();
        let mine = event(AuditKind::PasswordChanged, Some(me.id), me.id);
        let theirs = event(AuditKind::UserUpdated, Some(admin), me.id);
        let attempt = event(AuditKind::LoginFailed, None, me.id);
        let verified = event(AuditKind::EmailVerified, Some(me.id), me.id);
        let mut mocks = Mocks::default();
        let listed = vec![
            mine.clone(),
            theirs.clone(),
            attempt.clone(),
            verified.clone(),
        ];
        mocks
            .audit
            .expect_list()
            .with(eq(AuditQuery {
                subject: Some(me.id),
                limit: 11,
                ..AuditQuery::default()
            }))
            .returning(move |_| Ok(listed.clone()));
        let service = AuditService::new(mocks.audit_ports(), Duration::days(90));
        let page = service.own(&me, None, 10).await.unwrap();
        assert_eq!(page.next, None);
        assert_eq!(page.items[0], mine);
        assert_eq!(page.items[1].client, ClientInfo::default());
        assert_eq!(page.items[1].actor_id, Some(admin));
        assert_eq!(page.items[2].client, ClientInfo::default());
        assert_eq!(page.items[2].kind, attempt.kind);
        // Whoever opened the link may not be the account's owner.
        assert_eq!(page.items[3].client, ClientInfo::default());
        assert_eq!(page.items[3].actor_id, Some(me.id));
    }

    #[tokio::test]
    async fn a_full_page_points_at_its_last_event() {
        let me = user("ada");
        let mut mocks = Mocks::default();
        let events: Vec<_> = (0..3)
            .map(|_| event(AuditKind::LoginSucceeded, Some(me.id), me.id))
            .collect();
        let listed = events.clone();
        mocks
            .audit
            .expect_list()
            .returning(move |_| Ok(listed.clone()));
        let service = AuditService::new(mocks.audit_ports(), Duration::days(90));
        let page = service.own(&me, None, 2).await.unwrap();
        assert_eq!(page.items, events[..2]);
        assert_eq!(page.next, Some(events[1].id));
    }

    #[tokio::test]
    async fn only_superusers_list_everyone() {
        let mocks = Mocks::default();
        let service = AuditService::new(mocks.audit_ports(), Duration::days(90));
        let err = service
            .list(&user("ada"), ListAuditEvents::default())
            .await
            .unwrap_err();
        assert!(matches!(err, ListAuditEventsError::Forbidden));
    }

    #[tokio::test]
    async fn a_superuser_filters_and_pages() {
        let mut admin = user("ada");
        admin.is_superuser = true;
        let subject = UserId::generate();
        let after = Uuid::now_v7();
        let mut mocks = Mocks::default();
        mocks
            .audit
            .expect_list()
            .with(eq(AuditQuery {
                subject: Some(subject),
                kind: Some(AuditKind::LoginFailed),
                since: Some(NOW - Duration::days(1)),
                before: Some(after),
                limit: 51,
                ..AuditQuery::default()
            }))
            .returning(|_| Ok(Vec::new()));
        let service = AuditService::new(mocks.audit_ports(), Duration::days(90));
        let request = ListAuditEvents {
            user_id: Some(subject),
            kind: Some(AuditKind::LoginFailed),
            since: Some(NOW - Duration::days(1)),
            after: Some(after),
            limit: 50,
            ..ListAuditEvents::default()
        };
        let page = service.list(&admin, request).await.unwrap();
        assert!(page.items.is_empty() && page.next.is_none());
    }

    #[tokio::test]
    async fn purge_keeps_the_retention() {
        let mut mocks = Mocks::default();
        mocks
            .audit
            .expect_purge()
            .with(eq(NOW - Duration::days(90)))
            .returning(|_| Ok(4));
        let service = AuditService::new(mocks.audit_ports(), Duration::days(90));
        assert_eq!(service.purge().await.unwrap(), 4);
    }
}
