//! Turning malformed and invalid input into 422 field lists, and the garde
//! rules that delegate to the domain's value types (the authority on every
//! invariant) so that each rule and message exists once.

use serde::{Deserialize, Deserializer};
use userhub_domain::model::{Email, FullName, Password, Username};

use crate::error::FieldError;

/// The pydantic error type for one of our messages. Messages are written in
/// pydantic's words so that FastAPI clients see what they are used to.
pub(crate) fn kind_of(msg: &str) -> &'static str {
    const KINDS: &[(&str, &str)] = &[
        ("String should have at least", "string_too_short"),
        ("String should have at most", "string_too_long"),
        ("String should match pattern", "string_pattern_mismatch"),
        (
            "Input should be greater than or equal",
            "greater_than_equal",
        ),
        ("Input should be less than or equal", "less_than_equal"),
        ("Input should be a valid integer", "int_parsing"),
        ("Input should be a valid boolean", "bool_parsing"),
        ("Input should be a valid string", "string_type"),
        ("Input should be a valid UUID", "uuid_parsing"),
        (
            "Input should be a valid dictionary",
            "model_attributes_type",
        ),
        ("Input should be", "literal_error"),
        ("Field required", "missing"),
    ];
    KINDS
        .iter()
        .find(|(prefix, _)| msg.starts_with(prefix))
        .map_or("value_error", |(_, kind)| kind)
}

/// Every failure of a garde report, located under `source`.
pub(crate) fn from_report(source: &str, report: &garde::Report) -> Vec<FieldError> {
    report
        .iter()
        .map(|(path, error)| {
            let msg = error.message().to_owned();
            FieldError::new(kind_of(&msg), source, &path.to_string(), msg)
        })
        .collect()
}

/// A deserialisation failure, described without quoting the input (which
/// may be a password).
pub(crate) fn from_serde(source: &str, path: &str, message: &str) -> FieldError {
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        let full = if path.is_empty() || path == "." {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        return FieldError::new("missing", source, &full, "Field required");
    }
    let path = if path == "." { "" } else { path };
    let expected = message.split("expected ").nth(1).unwrap_or_default();
    let msg = if message.contains("invalid digit")
        || message.contains("number too")
        || expected.contains("i64")
    {
        "Input should be a valid integer"
    } else if expected.starts_with("a boolean") || message.contains("`true` or `false`") {
        "Input should be a valid boolean"
    } else if expected.starts_with("a string") {
        "Input should be a valid string"
    } else if expected.starts_with("struct") || expected.starts_with("a map") {
        "Input should be a valid dictionary or object"
    } else {
        "Invalid value"
    };
    FieldError::new(kind_of(msg), source, path, msg)
}

/// For `Option<Option<T>>` fields: absent → `None`, `null` → `Some(None)`.
pub(crate) fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Query-string booleans as FastAPI accepts them: true/false, 1/0, yes/no, on/off.
pub(crate) fn query_bool<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<bool>, D::Error> {
    let raw = Option::<String>::deserialize(deserializer)?;
    raw.map(|value| match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(serde::de::Error::custom("Input should be a valid boolean")),
    })
    .transpose()
}

fn fail(err: impl ToString) -> garde::Error {
    garde::Error::new(err.to_string())
}

fn no_nul(value: &str) -> garde::Result {
    if value.contains('\0') {
        Err(garde::Error::new(
            "String should not contain NUL characters",
        ))
    } else {
        Ok(())
    }
}

/// garde rule: a valid [`Email`].
pub(crate) fn email(value: &str, _: &()) -> garde::Result {
    no_nul(value)?;
    Email::parse(value).map(drop).map_err(fail)
}

/// garde rule: a valid [`Username`].
pub(crate) fn username(value: &str, _: &()) -> garde::Result {
    no_nul(value)?;
    Username::parse(value).map(drop).map_err(fail)
}

/// garde rule: a valid [`FullName`].
pub(crate) fn full_name(value: &str, _: &()) -> garde::Result {
    FullName::parse(value).map(drop).map_err(fail)
}

/// garde rule: a [`Password`] of the right length, free of the owner's
/// username and e-mail (when those are valid themselves).
pub(crate) fn new_password<'a>(
    username: Option<&'a str>,
    email: Option<&'a str>,
) -> impl FnOnce(&str, &()) -> garde::Result + 'a {
    move |value, _| {
        let password = Password::new(value.to_owned().into()).map_err(fail)?;
        let username = username.and_then(|u| Username::parse(u).ok());
        let email = email.and_then(|e| Email::parse(e).ok());
        password
            .check_not_personal(
                username.as_ref().map_or("", Username::as_str),
                email.as_ref().map_or("", Email::local_part),
            )
            .map_err(fail)
    }
}

/// garde rule: an integer within `min..=max`, in pydantic's words.
pub(crate) fn within(min: i64, max: i64) -> impl FnOnce(&i64, &()) -> garde::Result {
    move |value, _| {
        if *value < min {
            Err(garde::Error::new(format!(
                "Input should be greater than or equal to {min}"
            )))
        } else if *value > max {
            Err(garde::Error::new(format!(
                "Input should be less than or equal to {max}"
            )))
        } else {
            Ok(())
        }
    }
}

/// garde rule: a bounded, NUL-free string (credentials, tokens, search terms).
pub(crate) fn bounded(max_chars: usize) -> impl FnOnce(&str, &()) -> garde::Result {
    move |value, _| {
        no_nul(value)?;
        if value.chars().count() > max_chars {
            return Err(garde::Error::new(format!(
                "String should have at most {max_chars} characters"
            )));
        }
        Ok(())
    }
}

/// garde rule: a non-empty bounded, NUL-free string.
pub(crate) fn required(max_chars: usize) -> impl FnOnce(&str, &()) -> garde::Result {
    move |value, ctx| {
        if value.is_empty() {
            return Err(garde::Error::new("String should have at least 1 character"));
        }
        bounded(max_chars)(value, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_become_fields_without_the_input() {
        let e = from_serde("body", ".", "missing field `email` at line 1 column 2");
        assert_eq!(
            (e.kind, e.loc.clone(), e.msg.as_str()),
            (
                "missing",
                vec!["body".into(), "email".into()],
                "Field required"
            )
        );
        let e = from_serde(
            "body",
            "password",
            "invalid type: integer `1234`, expected a string at line 1 column 5",
        );
        assert_eq!(e.kind, "string_type");
        assert!(!e.msg.contains("1234"));
        let e = from_serde("query", "limit", "invalid digit found in string");
        assert_eq!(
            (e.kind, e.loc),
            ("int_parsing", vec!["query".to_owned(), "limit".to_owned()])
        );
    }

    #[test]
    fn domain_messages_map_to_pydantic_kinds() {
        assert_eq!(
            kind_of(&userhub_domain::model::UsernameError::TooShort.to_string()),
            "string_too_short"
        );
        assert_eq!(
            kind_of(&userhub_domain::model::UsernameError::Pattern.to_string()),
            "string_pattern_mismatch"
        );
        assert_eq!(
            kind_of(&userhub_domain::model::EmailError::Invalid.to_string()),
            "value_error"
        );
    }
}
