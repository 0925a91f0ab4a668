//! Listing users: filters, search, sort, paging by offset or cursor, and
//! the total.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, LikeExpr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, Order,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select,
};
use userhub_domain::PortError;
use userhub_domain::ports::{SortValue, UserPage, UserQuery, UserSortField};

use super::super::{Database, DbResultExt, escape_like, read};
use super::to_domain;
use crate::entities::{user, user_count};

/// `user_search.field` on PostgreSQL: which of a user's terms a row holds.
const SEARCH_USERNAME: i16 = 1;
const SEARCH_FULL_NAME: i16 = 2;
const SEARCH_EMAIL: i16 = 3;

pub(super) async fn list(db: &Database, query: &UserQuery) -> Result<UserPage, PortError> {
    let mut select = user::Entity::find();
    if let Some(active) = query.is_active {
        select = select.filter(user::Column::IsActive.eq(active));
    }
    if let Some(superuser) = query.is_superuser {
        select = select.filter(user::Column::IsSuperuser.eq(superuser));
    }
    if let Some(term) = &query.search {
        let pattern = format!("%{}%", escape_like(term));
        let like = || LikeExpr::new(pattern.clone()).escape('\\');
        // Emails and usernames are stored lower-cased; only full names need LOWER().
        let mut any = Condition::any()
            .add(user::Column::Username.like(like()))
            .add(Expr::expr(Func::lower(Expr::col(user::Column::FullName))).like(like()));
        let mut fields = vec![SEARCH_USERNAME, SEARCH_FULL_NAME];
        if query.search_email {
            any = any.add(user::Column::Email.like(like()));
            fields.push(SEARCH_EMAIL);
        }
        select = select.filter(any);
        if db.backend() == DbBackend::Postgres {
            // The terms' trigram index lives off `users` (so that a profile
            // write leaves the table's indexes alone): it finds the
            // candidates, and the condition above keeps the answer exact.
            // Each field has its own partial index, so each is its own
            // `field = n AND term LIKE …` for the planner to match.
            let terms = Alias::new("user_search");
            let mut in_fields = Condition::any();
            for field in fields {
                in_fields = in_fields.add(
                    Condition::all()
                        .add(Expr::col((terms.clone(), Alias::new("field"))).eq(field))
                        .add(Expr::col((terms.clone(), Alias::new("term"))).like(like())),
                );
            }
            let candidates = Query::select()
                .column((terms.clone(), Alias::new("user_id")))
                .from(terms)
                .cond_where(in_fields)
                .to_owned();
            select = select.filter(user::Column::Id.in_subquery(candidates));
        }
    }
    let order = if query.sort.descending {
        Order::Desc
    } else {
        Order::Asc
    };
    let column = match query.sort.field {
        // SQLite keeps timestamps as RFC 3339 text whose fraction varies in
        // length, so text order is not time order there; UUIDv7 ids are
        // minted at creation and are.
        UserSortField::CreatedAt if db.backend() == DbBackend::Sqlite => user::Column::Id,
        UserSortField::CreatedAt => user::Column::CreatedAt,
        UserSortField::Username => user::Column::Username,
        UserSortField::Email => user::Column::Email,
    };
    // The total ignores the cursor, as it ignores skip and limit.
    let matching = select.clone();
    if let Some(after) = &query.after {
        // (key, id) beyond the cursor's, in the listing's direction: one
        // index range scan however deep the page.
        let value: sea_orm::Value = match (&after.value, column) {
            (_, user::Column::Id) => after.id.as_uuid().into(),
            (SortValue::Time(at), _) => (*at).into(),
            (SortValue::Text(text), _) => text.clone().into(),
        };
        let key = Expr::tuple([
            Expr::col((user::Entity, column)),
            Expr::col((user::Entity, user::Column::Id)),
        ]);
        let beyond = Expr::tuple([Expr::val(value), Expr::val(after.id.as_uuid())]);
        select = select.filter(if query.sort.descending {
            key.lt(beyond)
        } else {
            key.gt(beyond)
        });
    }
    let conn = db.connection();
    let searched = query.search.is_some();
    let page = select
        .clone()
        .order_by(column, order.clone())
        .order_by(user::Column::Id, order)
        .offset(query.skip)
        .limit(query.limit);
    if searched && query.after.is_none() {
        return searched_page(conn, page, matching).await;
    }
    let total = || {
        let matching = matching.clone();
        async move {
            if searched {
                // Matches are few and found through the search indexes.
                matching.count(conn).await
            } else {
                count_from_counters(db, query).await
            }
        }
    };
    let (rows, total) = read(|| async { tokio::try_join!(page.clone().all(conn), total()) })
        .await
        .port()?;
    let items = rows.into_iter().map(to_domain).collect::<Result<_, _>>()?;
    Ok(UserPage { items, total })
}

/// A searched page (without a cursor) and the number of matches, in one
/// pass: each row carries the count of every row the search matched, so
/// the matches are found once rather than again by a count.
async fn searched_page(
    conn: &super::super::Connection,
    page: Select<user::Entity>,
    matching: Select<user::Entity>,
) -> Result<UserPage, PortError> {
    const TOTAL: &str = "total_matching";
    let counted = page
        .column_as(Expr::cust("COUNT(*) OVER ()"), TOTAL)
        .into_query();
    let rows = read(|| async { conn.query_all(&counted).await })
        .await
        .port()?;
    let total = match rows.first() {
        Some(row) => u64::try_from(row.try_get::<i64>("", TOTAL).port()?).unwrap_or(0),
        // A page past the last match says nothing of their number.
        None => read(|| async { matching.clone().count(conn).await })
            .await
            .port()?,
    };
    let items = rows
        .iter()
        .map(|row| {
            user::Model::from_query_result(row, "")
                .port()
                .and_then(to_domain)
        })
        .collect::<Result<_, _>>()?;
    Ok(UserPage { items, total })
}

/// How many users match the flags, from the counters the database keeps
/// per (`is_active`, `is_superuser`) pair: four rows at most, however
/// many users there are.
async fn count_from_counters(db: &Database, query: &UserQuery) -> Result<u64, DbErr> {
    let mut stmt = Query::select();
    // SUM over bigint is numeric on PostgreSQL: cast it back.
    stmt.expr(Expr::cust("CAST(COALESCE(SUM(n), 0) AS BIGINT)"))
        .from(user_count::Entity);
    if let Some(active) = query.is_active {
        stmt.and_where(Expr::col(user_count::Column::IsActive).eq(active));
    }
    if let Some(superuser) = query.is_superuser {
        stmt.and_where(Expr::col(user_count::Column::IsSuperuser).eq(superuser));
    }
    let row = db.connection().query_one(&stmt).await?;
    let total: i64 = match row {
        Some(row) => row.try_get_by_index(0)?,
        None => 0,
    };
    Ok(u64::try_from(total).unwrap_or(0))
}
