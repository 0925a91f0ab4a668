//! How a setting is declared: once, in a section, with its doc, default and
//! range. The macros here derive the rest: the section's struct and
//! `Default`, the environment names it reads, the range checks, and the
//! lines of `config/default.toml` and `.env.example`.

use figment::value::Value;
use serde::{Deserialize, Serialize};

/// A span of time counted in a unit of `UNIT` seconds, as a setting states
/// it (`*_SECONDS`, `*_MINUTES`, `*_HOURS`, `*_DAYS`): the number is what
/// the variable holds, serde reads it, and callers ask for a duration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Span<const UNIT: u64>(pub u64);

/// A setting in seconds.
pub type Seconds = Span<1>;
/// A setting in minutes.
pub type Minutes = Span<60>;
/// A setting in hours.
pub type Hours = Span<3600>;
/// A setting in days.
pub type Days = Span<86_400>;

impl<const UNIT: u64> Span<UNIT> {
    /// The span as a standard duration, saturating (ranges are checked at
    /// start).
    #[must_use]
    pub fn std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0.saturating_mul(UNIT))
    }

    /// The span as a [`time::Duration`], saturating.
    #[must_use]
    pub fn time(self) -> time::Duration {
        time::Duration::seconds(i64::try_from(self.0.saturating_mul(UNIT)).unwrap_or(i64::MAX))
    }
}

impl<const UNIT: u64> From<Span<UNIT>> for u64 {
    fn from(span: Span<UNIT>) -> Self {
        span.0
    }
}

/// One setting as the generated files show it.
pub struct Entry {
    /// The environment variable, lower-cased.
    pub key: &'static str,
    /// Its doc comment, one string per line.
    pub doc: &'static [&'static str],
}

/// A group of settings read together.
pub trait Section: Default + Serialize + for<'de> Deserialize<'de> {
    /// A heading for the generated files.
    const TITLE: &'static str;
    /// The settings, in declaration order.
    const ENTRIES: &'static [Entry];
}

/// Declares a section: a struct whose fields are named after their
/// variables, each `name: Type = default`. A field's checks are garde
/// rules (`#[garde(custom(within(1, 100)))]`, see [`super::rules`]); fields
/// the generated files must not show a value of (secrets) carry
/// `#[serde(skip_serializing)]`.
macro_rules! section {
    (
        $(#[doc = $sdoc:literal])*
        #[derive($($derive:tt)*)]
        pub struct $name:ident($title:literal) {
            $(
                $(#[doc = $doc:literal])*
                $(#[serde($($serde:tt)*)])?
                $(#[garde($($garde:tt)*)])?
                $field:ident : $ty:ty = $default:expr
            ),* $(,)?
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
        #[derive($($derive)*)]
        #[serde(default)]
        #[garde(allow_unvalidated)]
        #[garde(context(crate::settings::rules::Checks))]
        pub struct $name {
            $(
                $(#[doc = $doc])*
                $(#[serde($($serde)*)])?
                $(#[garde($($garde)*)])?
                pub $field: $ty,
            )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }

        impl $crate::settings::declare::Section for $name {
            const TITLE: &'static str = $title;
            const ENTRIES: &'static [$crate::settings::declare::Entry] = &[$(
                $crate::settings::declare::Entry {
                    key: stringify!($field),
                    doc: &[$($doc),*],
                },
            )*];
        }
    };
}
pub(crate) use section;

/// Declares a setting that is one of a few names, read in any case and
/// with blanks around; the first name is the default.
macro_rules! choice {
    (
        $(#[doc = $doc:literal])*
        pub enum $name:ident {
            $(
                $(#[doc = $vdoc:literal])*
                $variant:ident = $text:literal
            ),+ $(,)?
        }
        expecting $expected:literal
    ) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[doc = $vdoc])* $variant,)+
        }

        impl $name {
            const NAMES: &'static [(&'static str, Self)] = &[$(($text, Self::$variant)),+];
            const EXPECTED: &'static str = $expected;

            /// The name the setting is written with.
            #[must_use]
            pub fn name(self) -> &'static str {
                Self::NAMES
                    .iter()
                    .find(|(_, value)| *value == self)
                    .map_or("", |(name, _)| name)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::NAMES[0].1
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                Self::NAMES
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(raw.trim()))
                    .map(|(_, value)| *value)
                    .ok_or_else(|| format!("`{raw}`: expected {}", Self::EXPECTED))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = <String as serde::Deserialize>::deserialize(deserializer)?;
                raw.parse().map_err(|_| {
                    serde::de::Error::invalid_value(serde::de::Unexpected::Str(&raw), &Self::EXPECTED)
                })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.name())
            }
        }
    };
}
pub(crate) use choice;

/// The default values of a section by key, as figment reads them back.
fn defaults<S: Section>() -> Vec<(&'static Entry, Option<Value>)> {
    let dict = Value::serialize(S::default())
        .ok()
        .and_then(|v| v.into_dict())
        .unwrap_or_default();
    S::ENTRIES
        .iter()
        .map(|entry| {
            let value = dict
                .get(entry.key)
                .filter(|v| !matches!(v, Value::Empty(..)));
            (entry, value.cloned())
        })
        .collect()
}

/// A value as TOML writes it.
fn toml_value(value: &Value) -> String {
    match value {
        Value::String(_, s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => n
            .to_u128()
            .map(|n| n.to_string())
            .or_else(|| n.to_i128().map(|n| n.to_string()))
            .or_else(|| n.to_f64().map(|n| n.to_string()))
            .unwrap_or_default(),
        other => format!("{other:?}"),
    }
}

/// A value as a `.env` line writes it: bare when it is plain, else in
/// double quotes (as dotenv files quote values with blanks or `<`).
fn env_value(value: &Value) -> String {
    match value {
        Value::String(_, s)
            if !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_./:,@-".contains(c)) =>
        {
            format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
        }
        Value::String(_, s) => s.clone(),
        other => toml_value(other),
    }
}

/// Appends a section's lines: a heading, then each setting with its doc.
/// `line` writes one setting; it gets `None` for a setting unset by
/// default (or a secret).
fn render_section<S: Section>(out: &mut String, line: impl Fn(&Entry, Option<&Value>) -> String) {
    out.push_str(&format!("\n# --- {} ---\n", S::TITLE));
    for (entry, value) in defaults::<S>() {
        for doc in entry.doc {
            out.push_str(&format!("#{}\n", doc.trim_end()));
        }
        out.push_str(&line(entry, value.as_ref()));
        out.push('\n');
    }
}

/// The text of `config/default.toml` for the given sections.
pub fn render_toml(sections: &[fn(&mut String, bool)]) -> String {
    let mut out = String::from(
        "# Generated from crates/server/src/settings/sections.rs by its test; edit\n\
         # the declarations there. Keys are the environment variables' names in\n\
         # lower case; `config/<APP_ENV>.toml`, a `.env` file and the environment\n\
         # itself override them, in that order. Settings without a default are\n\
         # commented out.\n",
    );
    for section in sections {
        section(&mut out, true);
    }
    out
}

/// The text of `.env.example` for the given sections.
pub fn render_env(sections: &[fn(&mut String, bool)]) -> String {
    let mut out = String::from(
        "# Generated from crates/server/src/settings/sections.rs by its test.\n\
         # Copy to .env and adjust. The environment overrides .env, which\n\
         # overrides config/*.toml. An empty value means \"not set\".\n",
    );
    for section in sections {
        section(&mut out, false);
    }
    out
}

/// Writes one section in the TOML (`toml`) or `.env` form.
pub fn render<S: Section>(out: &mut String, toml: bool) {
    if toml {
        render_section::<S>(out, |entry, value| match value {
            Some(value) => format!("{} = {}", entry.key, toml_value(value)),
            None => format!("# {} =", entry.key),
        });
    } else {
        render_section::<S>(out, |entry, value| {
            format!(
                "{}={}",
                entry.key.to_ascii_uppercase(),
                value.map(env_value).unwrap_or_default()
            )
        });
    }
}
