//! A body or query string as domain values, every failing field named
//! at once, as pydantic does.

use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};
use crate::validation::{self, Fields, IntoDomain};

/// At most this many fields are reported in one 422.
const MAX_FIELD_ERRORS: usize = 32;

/// At most this many repairs of one field: set aside, then stood in for.
/// A field a stand-in does not satisfy (one that is not a string) ends
/// the repairs, so that no input makes them loop.
const MAX_REPAIRS_PER_FIELD: usize = 2;

/// The top-level field an error is about, if any.
fn field_of(error: &FieldError) -> Option<&str> {
    error.loc.get(1).map(String::as_str)
}

/// Deserialises a body or query string and takes each field through its
/// rule into the domain values, reporting every failing field at once, as pydantic
/// does: a field of the wrong type is set aside and a missing one stood in
/// for (every required field of this API is a string), then
/// deserialisation is tried again, so that the fields after the first
/// failure are checked too. A field is reported once, at its first failure.
fn parse_all<T, S>(source: &'static str, mut input: S) -> Result<T::Domain, ApiError>
where
    T: IntoDomain,
    S: FieldSource<T>,
{
    let mut errors: Vec<FieldError> = Vec::new();
    let mut repairs: Vec<String> = Vec::new();
    let parsed = loop {
        match input.deserialize() {
            Ok(value) => break Some(value),
            Err((path, message)) => {
                let error = validation::from_serde(source, &path, &message);
                let field = field_of(&error).map(str::to_owned);
                let repaired = match (&field, error.kind) {
                    (Some(field), _)
                        if repairs.iter().filter(|f| *f == field).count()
                            >= MAX_REPAIRS_PER_FIELD =>
                    {
                        false
                    }
                    (Some(field), kind) => {
                        repairs.push(field.clone());
                        if kind == "missing" {
                            input.stand_in(field)
                        } else {
                            input.remove(field)
                        }
                    }
                    (None, _) => false,
                };
                add_unseen(&mut errors, [error]);
                if !repaired || errors.len() >= MAX_FIELD_ERRORS {
                    break None;
                }
            }
        }
    };
    let Some(value) = parsed else {
        return Err(ApiError::Validation(errors));
    };
    let mut fields = Fields::new(source);
    let domain = value.into_domain(&mut fields);
    add_unseen(&mut errors, fields.into_errors());
    match domain {
        Some(domain) if errors.is_empty() => Ok(domain),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// Adds the errors about fields not reported yet.
fn add_unseen(errors: &mut Vec<FieldError>, new: impl IntoIterator<Item = FieldError>) {
    for error in new {
        let seen =
            field_of(&error).is_some_and(|field| errors.iter().any(|e| field_of(e) == Some(field)));
        if !seen {
            errors.push(error);
        }
    }
}

/// Input that can be deserialised again after a field is set aside.
trait FieldSource<T> {
    /// `Err((path, serde's message))` on failure.
    fn deserialize(&self) -> Result<T, (String, String)>;
    /// Removes `field`; returns whether it was there.
    fn remove(&mut self, field: &str) -> bool;
    /// Adds an empty string as `field`; returns whether it could.
    fn stand_in(&mut self, field: &str) -> bool;
}

struct JsonSource(serde_json::Value);

impl<T: DeserializeOwned> FieldSource<T> for JsonSource {
    fn deserialize(&self) -> Result<T, (String, String)> {
        serde_path_to_error::deserialize(&self.0)
            .map_err(|err| (err.path().to_string(), err.into_inner().to_string()))
    }

    fn remove(&mut self, field: &str) -> bool {
        self.0
            .as_object_mut()
            .is_some_and(|object| object.remove(field).is_some())
    }

    fn stand_in(&mut self, field: &str) -> bool {
        self.0.as_object_mut().is_some_and(|object| {
            object
                .insert(field.to_owned(), serde_json::Value::String(String::new()))
                .is_none()
        })
    }
}

struct UrlencodedSource(Vec<(String, String)>);

impl<T: DeserializeOwned> FieldSource<T> for UrlencodedSource {
    fn deserialize(&self) -> Result<T, (String, String)> {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.0)
            .finish();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map_err(|err| (err.path().to_string(), err.into_inner().to_string()))
    }

    fn remove(&mut self, field: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|(k, _)| k != field);
        self.0.len() != before
    }

    fn stand_in(&mut self, field: &str) -> bool {
        if self.0.iter().any(|(k, _)| k == field) {
            return false;
        }
        self.0.push((field.to_owned(), String::new()));
        true
    }
}

/// Deserialises and validates a JSON body, naming every failing field.
pub(crate) fn parse_json<T>(body: &[u8]) -> Result<T::Domain, ApiError>
where
    T: DeserializeOwned + IntoDomain,
{
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| json_invalid())?;
    parse_all::<T, _>("body", JsonSource(value))
}

fn json_invalid() -> ApiError {
    ApiError::field("json_invalid", "body", "", "JSON decode error")
}

/// Deserialises and validates `application/x-www-form-urlencoded` or a
/// query string, naming every failing field.
pub(super) fn parse_urlencoded<T>(source: &'static str, raw: &[u8]) -> Result<T::Domain, ApiError>
where
    T: DeserializeOwned + IntoDomain,
{
    let pairs = form_urlencoded::parse(raw).into_owned().collect();
    parse_all::<T, _>(source, UrlencodedSource(pairs))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)] // read only by serde
    struct Listed {
        names: Vec<String>,
        label: String,
    }

    impl IntoDomain for Listed {
        type Domain = ();

        fn into_domain(self, _: &mut Fields) -> Option<()> {
            Some(())
        }
    }

    /// A required field that is not a string cannot be stood in for: the
    /// repairs end (they once looped for ever on `{}`).
    #[test]
    fn a_required_list_missing_or_of_the_wrong_type_ends_the_repairs() {
        for body in [r#"{}"#, r#"{"names": 5}"#, r#"{"names": "x", "label": 3}"#] {
            let Err(ApiError::Validation(errors)) = parse_json::<Listed>(body.as_bytes()) else {
                panic!("{body} is refused");
            };
            assert!(
                errors.iter().any(|e| e.loc == ["body", "names"]),
                "{body}: {errors:?}"
            );
        }
    }
}
