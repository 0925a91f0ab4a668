//! Turning malformed and invalid input into 422 field lists, in one pass:
//! serde reads the types, then [`IntoDomain`] takes each field through its
//! rule, a transport limit (a length, a range, no NUL character) or the
//! domain's parser, the authority on every invariant. Each refusal is
//! mapped to pydantic's words by variant, its numbers read from the
//! domain's constants.

use serde::{Deserialize, Deserializer};
use userhub_domain::model::{
    Email, EmailError, FullName, FullNameError, Password, PasswordError, Username, UsernameError,
};

use crate::error::FieldError;

/// A field's failure as FastAPI reports it: pydantic's error `type` and
/// its message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Issue {
    pub(crate) kind: &'static str,
    pub(crate) msg: String,
}

impl Issue {
    pub(crate) fn new(kind: &'static str, msg: impl Into<String>) -> Self {
        Self {
            kind,
            msg: msg.into(),
        }
    }
}

/// How a refusal by the domain reads on the wire, variant by variant.
pub(crate) trait Refusal {
    /// The pydantic type and message of this refusal.
    fn issue(&self) -> Issue;
}

impl Refusal for Issue {
    fn issue(&self) -> Issue {
        Issue::new(self.kind, self.msg.clone())
    }
}

/// A request whose fields become domain values in one pass, so that each
/// value is parsed once and every refused field is reported together.
pub(crate) trait IntoDomain: Sized {
    /// What the handler receives.
    type Domain;

    /// The domain values; `None` once a refusal is recorded in `fields`.
    fn into_domain(self, fields: &mut Fields) -> Option<Self::Domain>;
}

/// The refusals of one request's fields, located under a source (`body`,
/// `query`).
pub(crate) struct Fields {
    source: &'static str,
    errors: Vec<FieldError>,
}

impl Fields {
    pub(crate) fn new(source: &'static str) -> Self {
        Self {
            source,
            errors: Vec::new(),
        }
    }

    /// The value, or `None` with its refusal recorded at `field`.
    pub(crate) fn take<T, E: Refusal>(&mut self, field: &str, parsed: Result<T, E>) -> Option<T> {
        parsed
            .map_err(|err| {
                let issue = err.issue();
                self.errors
                    .push(FieldError::new(issue.kind, self.source, field, issue.msg));
            })
            .ok()
    }

    /// [`Fields::take`] for a field that may be absent.
    pub(crate) fn optional<R, T, E: Refusal>(
        &mut self,
        field: &str,
        raw: Option<R>,
        parse: impl FnOnce(R) -> Result<T, E>,
    ) -> Option<Option<T>> {
        self.take(field, raw.map(parse).transpose())
    }

    pub(crate) fn into_errors(self) -> Vec<FieldError> {
        self.errors
    }
}

impl Refusal for EmailError {
    fn issue(&self) -> Issue {
        match self {
            Self::TooLong => Issue::new(
                "value_error",
                format!(
                    "value is not a valid email address: it must have at most {} characters",
                    Email::MAX_LEN
                ),
            ),
            Self::Invalid => Issue::new("value_error", "value is not a valid email address"),
        }
    }
}

impl Refusal for UsernameError {
    fn issue(&self) -> Issue {
        match self {
            Self::TooShort => at_least(Username::MIN_LEN, "characters"),
            Self::TooLong => at_most(Username::MAX_LEN, "characters"),
            Self::Pattern => Issue::new(
                "string_pattern_mismatch",
                format!("String should match pattern '{}'", Username::PATTERN),
            ),
        }
    }
}

impl Refusal for FullNameError {
    fn issue(&self) -> Issue {
        match self {
            Self::TooLong => at_most(FullName::MAX_LEN, "characters"),
            Self::ControlCharacter => Issue::new(
                "value_error",
                "String should not contain control characters",
            ),
        }
    }
}

impl Refusal for PasswordError {
    fn issue(&self) -> Issue {
        match self {
            Self::TooShort => at_least(Password::MIN_BYTES, "characters"),
            Self::TooLong => at_most(Password::MAX_BYTES, "bytes"),
            Self::ContainsNul => Issue::new("value_error", NO_NUL),
            Self::ContainsUsername => Issue::new(
                "value_error",
                "Password is too weak: it must not contain the username",
            ),
            Self::ContainsEmail => Issue::new(
                "value_error",
                "Password is too weak: it must not contain the email address",
            ),
            Self::TooGuessable => Issue::new(
                "value_error",
                "Password is too weak: it is too easy to guess",
            ),
        }
    }
}

const NO_NUL: &str = "String should not contain NUL characters";

/// pydantic's `string_too_short`.
fn at_least(min: usize, unit: &str) -> Issue {
    let unit = if min == 1 {
        unit.trim_end_matches('s')
    } else {
        unit
    };
    Issue::new(
        "string_too_short",
        format!("String should have at least {min} {unit}"),
    )
}

/// pydantic's `string_too_long`.
fn at_most(max: usize, unit: &str) -> Issue {
    Issue::new(
        "string_too_long",
        format!("String should have at most {max} {unit}"),
    )
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
    if message.starts_with("unknown variant") {
        // serde's list comes last; the input, quoted before it, is not echoed.
        let allowed = message.rsplit_once(", expected ").unwrap_or_default().1;
        return FieldError::new("literal_error", source, path, one_of(allowed));
    }
    let (kind, msg) = if message.contains("invalid digit")
        || message.contains("number too")
        || expected.contains("i64")
    {
        ("int_parsing", "Input should be a valid integer")
    } else if expected.starts_with("a boolean") || message.contains("`true` or `false`") {
        ("bool_parsing", "Input should be a valid boolean")
    } else if expected.starts_with("a string") {
        ("string_type", "Input should be a valid string")
    } else if expected.starts_with("struct") || expected.starts_with("a map") {
        (
            "model_attributes_type",
            "Input should be a valid dictionary or object",
        )
    } else {
        ("value_error", "Invalid value")
    };
    FieldError::new(kind, source, path, msg)
}

/// pydantic's message for a value outside a set, from serde's list of the
/// names it expected (``one of `a`, `b`, `c` `` or `` `a` or `b` ``).
fn one_of(expected: &str) -> String {
    let names: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|name| format!("'{name}'"))
        .collect();
    match names.split_last() {
        Some((last, [])) => format!("Input should be {last}"),
        Some((last, rest)) => format!("Input should be {} or {last}", rest.join(", ")),
        None => "Input should be one of the allowed values".to_owned(),
    }
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

/// Transport rule: no NUL character (PostgreSQL cannot store one).
pub(crate) fn no_nul(value: String) -> Result<String, Issue> {
    if value.contains('\0') {
        Err(Issue::new("value_error", NO_NUL))
    } else {
        Ok(value)
    }
}

/// Transport rule: an integer within `min..=max`, in pydantic's words.
pub(crate) fn within(min: i64, max: i64) -> impl FnOnce(i64) -> Result<i64, Issue> {
    move |value| {
        if value < min {
            Err(Issue::new(
                "greater_than_equal",
                format!("Input should be greater than or equal to {min}"),
            ))
        } else if value > max {
            Err(Issue::new(
                "less_than_equal",
                format!("Input should be less than or equal to {max}"),
            ))
        } else {
            Ok(value)
        }
    }
}

/// Transport rule: a bounded, NUL-free string (credentials, tokens, search
/// terms).
pub(crate) fn bounded(max_chars: usize) -> impl FnOnce(String) -> Result<String, Issue> {
    move |value| {
        let value = no_nul(value)?;
        if value.chars().count() > max_chars {
            return Err(at_most(max_chars, "characters"));
        }
        Ok(value)
    }
}

/// Transport rule: a non-empty bounded, NUL-free string.
pub(crate) fn required(max_chars: usize) -> impl FnOnce(String) -> Result<String, Issue> {
    move |value| {
        if value.is_empty() {
            return Err(at_least(1, "characters"));
        }
        bounded(max_chars)(value)
    }
}

/// Transport rule: exactly `expected` (an OAuth2 `grant_type`).
pub(crate) fn literal(expected: &'static str) -> impl FnOnce(String) -> Result<String, Issue> {
    move |value| {
        if value == expected {
            Ok(value)
        } else {
            Err(Issue::new(
                "string_pattern_mismatch",
                format!("String should match pattern '^{expected}$'"),
            ))
        }
    }
}

/// A domain value parsed from text that holds no NUL character, with the
/// domain's refusal in pydantic's words.
pub(crate) fn parse_text<T, E: Refusal>(
    raw: String,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, Issue> {
    let raw = no_nul(raw)?;
    parse(&raw).map_err(|err| err.issue())
}

/// A value the domain refused, as a 422 at `["body", field]`.
pub(crate) fn invalid(field: &str, err: impl Refusal) -> crate::ApiError {
    let issue = err.issue();
    crate::ApiError::field(issue.kind, "body", field, issue.msg)
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
    fn an_unknown_variant_is_a_literal_error_listing_the_allowed_values() {
        let e = from_serde(
            "query",
            "sort",
            "unknown variant `password_hash`, expected one of `created_at`, `username`, `-email`",
        );
        assert_eq!(e.kind, "literal_error");
        assert_eq!(
            e.msg,
            "Input should be 'created_at', 'username' or '-email'"
        );
        assert!(!e.msg.contains("password_hash"));
        let e = from_serde(
            "query",
            "sort",
            "unknown variant `x, expected `secret``, expected `a` or `b`",
        );
        assert_eq!(e.msg, "Input should be 'a' or 'b'");
        let e = from_serde("body", "x", "unknown variant `b`, expected `a`");
        assert_eq!(e.msg, "Input should be 'a'");
    }

    #[test]
    fn domain_refusals_map_to_pydantic_kinds_by_variant() {
        assert_eq!(UsernameError::TooShort.issue().kind, "string_too_short");
        assert_eq!(
            UsernameError::Pattern.issue().kind,
            "string_pattern_mismatch"
        );
        assert_eq!(EmailError::Invalid.issue().kind, "value_error");
        assert_eq!(PasswordError::TooLong.issue().kind, "string_too_long");
        assert_eq!(FullNameError::ControlCharacter.issue().kind, "value_error");
    }

    #[test]
    fn transport_rules_read_as_pydantic_does() {
        assert_eq!(
            required(8)(String::new()).unwrap_err(),
            Issue::new(
                "string_too_short",
                "String should have at least 1 character"
            )
        );
        assert_eq!(
            bounded(3)("abcd".into()).unwrap_err(),
            Issue::new("string_too_long", "String should have at most 3 characters")
        );
        assert_eq!(
            within(1, 100)(0).unwrap_err(),
            Issue::new(
                "greater_than_equal",
                "Input should be greater than or equal to 1"
            )
        );
        assert_eq!(within(1, 100)(100), Ok(100));
        assert_eq!(no_nul("a\0b".into()).unwrap_err().kind, "value_error");
        assert_eq!(
            literal("password")("client_credentials".into())
                .unwrap_err()
                .msg,
            "String should match pattern '^password$'"
        );
        assert_eq!(
            parse_text("ab".into(), Username::parse).unwrap_err(),
            Issue::new(
                "string_too_short",
                "String should have at least 3 characters"
            )
        );
    }
}
