//! Reading users: listings and one user, with what each caller may see.

use super::UserService;
use crate::PortError;
use crate::model::{User, UserId, UserView};
use crate::ports::{AccessClaims, UserCursor, UserPage, UserQuery, UserSort, UserSortField};

/// A listing as asked for by a caller, before authorisation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListUsers {
    /// Rows to skip.
    pub skip: u64,
    /// Page size (1–100, checked at the edge).
    pub limit: u64,
    /// Substring to look for; empty means none.
    pub search: Option<String>,
    /// Order.
    pub sort: UserSort,
    /// Filter on `is_active` (superusers only, unless `true`).
    pub is_active: Option<bool>,
    /// Filter on `is_superuser`.
    pub is_superuser: Option<bool>,
    /// Continue after this position (the last row of the previous page).
    pub after: Option<UserCursor>,
}

/// A page of users as one caller may see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserListing {
    /// The page.
    pub items: Vec<UserView>,
    /// Every user matching the filters.
    pub total: u64,
    /// Where the next page starts; `None` when this page is not full.
    pub next: Option<UserCursor>,
}

/// Why a listing was refused.
#[derive(Debug, thiserror::Error)]
pub enum ListUsersError {
    /// Only superusers may list deactivated users.
    #[error("only superusers can filter on is_active")]
    FilterForbidden,
    /// Only superusers may order by e-mail: the order would reveal addresses.
    #[error("only superusers can sort by email")]
    SortForbidden,
    /// A port failed; [`PortError`] tells whether retrying may help.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why a user could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GetUserError {
    /// The token's session has ended, or its user is deactivated.
    #[error("could not validate credentials")]
    Unauthenticated,
    /// No such user, or deactivated and the caller is no superuser.
    #[error("user not found")]
    NotFound,
    /// A port failed; [`PortError`] tells whether retrying may help.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl UserService {
    /// A page of the users the caller may see. Nothing a non-superuser may
    /// not read (deactivated users, e-mail addresses) filters or orders it.
    pub async fn list(
        &self,
        actor: &User,
        request: ListUsers,
    ) -> Result<UserListing, ListUsersError> {
        let is_active = if actor.is_superuser {
            request.is_active
        } else if request.is_active == Some(false) {
            return Err(ListUsersError::FilterForbidden);
        } else {
            Some(true)
        };
        if !actor.is_superuser && request.sort.field == UserSortField::Email {
            return Err(ListUsersError::SortForbidden);
        }
        let query = UserQuery {
            skip: request.skip,
            limit: request.limit,
            search: request
                .search
                .filter(|s| !s.is_empty())
                .map(|s| s.to_lowercase()),
            search_email: actor.is_superuser,
            sort: request.sort,
            is_active,
            is_superuser: request.is_superuser,
            after: request.after,
        };
        let UserPage { items, total } = self.ports.users.list(&query).await?;
        let full = u64::try_from(items.len()).unwrap_or(u64::MAX) >= query.limit;
        let next = items
            .last()
            .filter(|_| full)
            .map(|last| UserCursor::of(last, query.sort.field));
        let items = items
            .into_iter()
            .map(|user| UserView::for_viewer(user, actor))
            .collect();
        Ok(UserListing { items, total, next })
    }

    /// One user, if the caller may see it.
    pub async fn get(&self, actor: &User, id: UserId) -> Result<UserView, GetUserError> {
        let user = self
            .visible(actor, id)
            .await?
            .ok_or(GetUserError::NotFound)?;
        Ok(UserView::for_viewer(user, actor))
    }

    /// [`UserService::get`] for the caller a verified access token names:
    /// the session check and the read are one round trip, with the same
    /// rules (an ended session or a deactivated caller is refused at once).
    pub async fn get_as(&self, caller: AccessClaims, id: UserId) -> Result<UserView, GetUserError> {
        let now = self.ports.clock.now();
        let (actor, target) = self
            .ports
            .sessions
            .find_active_user_and(caller.user_id, caller.session_id, id, now)
            .await?
            .ok_or(GetUserError::Unauthenticated)?;
        let user = target
            .filter(|u| u.is_active || actor.is_superuser)
            .ok_or(GetUserError::NotFound)?;
        Ok(UserView::for_viewer(user, &actor))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::*;
    use crate::ports::*;
    use crate::services::fixtures::{Mocks, NOW, superuser, user};
    use crate::services::users::test_support::*;

    #[tokio::test]
    async fn list_shows_ordinary_users_only_active_users_and_hides_emails() {
        let (ada, bob) = (user("ada"), user("bob"));
        let bob_id = bob.id;
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_list()
            .withf(|q| {
                q.is_active == Some(true) && !q.search_email && q.search.as_deref() == Some("bo%")
            })
            .returning(move |_| {
                Ok(UserPage {
                    items: vec![bob.clone()],
                    total: 1,
                })
            });
        let request = ListUsers {
            limit: 10,
            search: Some("Bo%".into()),
            ..ListUsers::default()
        };
        let UserListing { items, total, .. } = service(mocks).list(&ada, request).await.unwrap();
        assert_eq!(total, 1);
        assert_eq!(items[0].user().id, bob_id);
        assert_eq!(items[0].email(), None);
        assert_eq!(items[0].last_login_at(), None);
    }

    #[tokio::test]
    async fn list_forbids_ordinary_users_to_ask_for_deactivated_users() {
        let request = ListUsers {
            limit: 10,
            is_active: Some(false),
            ..ListUsers::default()
        };
        let err = service(Mocks::default())
            .list(&user("ada"), request)
            .await
            .unwrap_err();
        assert!(matches!(err, ListUsersError::FilterForbidden));
    }

    #[tokio::test]
    async fn list_lets_superusers_filter_and_search_emails_and_see_them() {
        let root = superuser("root");
        let cursor = UserCursor {
            value: crate::ports::SortValue::Time(NOW),
            id: UserId::generate(),
        };
        let expected = cursor.clone();
        let bob = User {
            is_active: false,
            ..user("bob")
        };
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_list()
            .withf(move |q| {
                q.is_active == Some(false)
                    && q.search_email
                    && q.search.is_none()
                    && q.after.as_ref() == Some(&expected)
            })
            .returning(move |_| {
                Ok(UserPage {
                    items: vec![bob.clone()],
                    total: 1,
                })
            });
        let request = ListUsers {
            limit: 10,
            is_active: Some(false),
            search: Some(String::new()),
            after: Some(cursor),
            ..ListUsers::default()
        };
        let UserListing { items, .. } = service(mocks).list(&root, request).await.unwrap();
        assert_eq!(items[0].email().unwrap().as_str(), "bob@example.com");
    }

    #[tokio::test]
    async fn get_hides_deactivated_users_from_ordinary_users_only() {
        let bob = User {
            is_active: false,
            ..user("bob")
        };
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        let service = service(mocks);
        assert!(matches!(
            service.get(&user("ada"), bob.id).await,
            Err(GetUserError::NotFound)
        ));
        assert_eq!(
            service
                .get(&superuser("root"), bob.id)
                .await
                .unwrap()
                .user()
                .id,
            bob.id
        );
    }

    #[tokio::test]
    async fn get_shows_the_email_to_the_user_themself() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        found(&mut mocks, &ada);
        let view = service(mocks).get(&ada, ada.id).await.unwrap();
        assert_eq!(view.email(), Some(&ada.email));
        assert_eq!(view.last_login_at(), Some(None));
    }

    fn claims(of: &User) -> AccessClaims {
        AccessClaims {
            user_id: of.id,
            session_id: crate::model::SessionId::generate(),
        }
    }

    fn fused(mocks: &mut Mocks, answer: Option<(User, Option<User>)>) {
        mocks
            .sessions
            .expect_find_active_user_and()
            .times(1)
            .return_once(move |_, _, _, _| Ok(answer));
    }

    #[tokio::test]
    async fn get_as_applies_the_rules_of_get_to_one_fused_read() {
        let (ada, root) = (user("ada"), superuser("root"));
        let bob = User {
            is_active: false,
            ..user("bob")
        };
        // An ended session or a deactivated caller: refused.
        let mut mocks = Mocks::default();
        fused(&mut mocks, None);
        let err = service(mocks)
            .get_as(claims(&ada), bob.id)
            .await
            .unwrap_err();
        assert!(matches!(err, GetUserError::Unauthenticated));
        // A deactivated user is not found by ordinary users…
        let mut mocks = Mocks::default();
        fused(&mut mocks, Some((ada.clone(), Some(bob.clone()))));
        let err = service(mocks)
            .get_as(claims(&ada), bob.id)
            .await
            .unwrap_err();
        assert!(matches!(err, GetUserError::NotFound));
        // …but is by superusers, who see the private fields.
        let mut mocks = Mocks::default();
        fused(&mut mocks, Some((root.clone(), Some(bob.clone()))));
        let view = service(mocks).get_as(claims(&root), bob.id).await.unwrap();
        assert_eq!(view.email(), Some(&bob.email));
        // Someone else's private fields stay hidden; an unknown id is not found.
        let carol = user("carol");
        let mut mocks = Mocks::default();
        fused(&mut mocks, Some((ada.clone(), Some(carol.clone()))));
        let view = service(mocks).get_as(claims(&ada), carol.id).await.unwrap();
        assert_eq!(view.email(), None);
        let mut mocks = Mocks::default();
        fused(&mut mocks, Some((ada.clone(), None)));
        let err = service(mocks)
            .get_as(claims(&ada), carol.id)
            .await
            .unwrap_err();
        assert!(matches!(err, GetUserError::NotFound));
    }

    #[tokio::test]
    async fn list_forbids_ordinary_users_to_sort_by_email() {
        let request = ListUsers {
            limit: 10,
            sort: UserSort {
                field: UserSortField::Email,
                descending: true,
            },
            ..ListUsers::default()
        };
        let err = service(Mocks::default())
            .list(&user("ada"), request)
            .await
            .unwrap_err();
        assert!(matches!(err, ListUsersError::SortForbidden));
    }

    #[tokio::test]
    async fn list_continues_from_the_last_row_of_a_full_page_only() {
        let (ada, bob) = (user("ada"), user("bob"));
        let last = bob.clone();
        let mut mocks = Mocks::default();
        mocks.users.expect_list().returning(move |_| {
            Ok(UserPage {
                items: vec![ada.clone(), bob.clone()],
                total: 5,
            })
        });
        let service = service(mocks);
        let page = |limit| ListUsers {
            limit,
            sort: UserSort {
                field: UserSortField::Username,
                descending: false,
            },
            ..ListUsers::default()
        };
        let full = service.list(&user("eve"), page(2)).await.unwrap();
        assert_eq!(
            full.next,
            Some(UserCursor {
                value: crate::ports::SortValue::Text("bob".into()),
                id: last.id,
            })
        );
        let short = service.list(&user("eve"), page(3)).await.unwrap();
        assert_eq!(short.next, None);
    }
}
