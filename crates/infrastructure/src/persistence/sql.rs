//! Small statement builders and the time format the raw tables share.

use sea_orm::Value;
use sea_orm::sea_query::{DeleteStatement, Expr, ExprTrait, IntoColumnRef, IntoTableRef, Query};
use time::OffsetDateTime;

/// Escapes `%`, `_` and `\` so that user input in a LIKE pattern matches itself.
pub(crate) fn escape_like(term: &str) -> String {
    let mut escaped = String::with_capacity(term.len());
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Deletes the rows of `table` whose `column` equals `value`.
pub(crate) fn delete_where<T, C, V>(table: T, column: C, value: V) -> DeleteStatement
where
    T: IntoTableRef,
    C: IntoColumnRef,
    V: Into<Value>,
{
    Query::delete()
        .from_table(table)
        .and_where(Expr::col(column).eq(value))
        .to_owned()
}

/// Deletes the rows of `table` whose time in `column` (microseconds) is
/// before `before`.
pub(crate) fn delete_older<T, C>(table: T, column: C, before: i64) -> DeleteStatement
where
    T: IntoTableRef,
    C: IntoColumnRef,
{
    Query::delete()
        .from_table(table)
        .and_where(Expr::col(column).lt(before))
        .to_owned()
}

/// Microseconds since the Unix epoch: how the raw tables store times.
pub(crate) fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// The time stored as `us`; 0 (or less) means none.
pub(crate) fn from_micros(us: i64) -> Option<OffsetDateTime> {
    (us > 0)
        .then(|| OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).ok())
        .flatten()
}
