//! Keys of `.env` and `config/*.toml` that name no setting: a typo there
//! (`BCRYPT_COSTT`) would otherwise leave the default in force unnoticed.

use std::collections::BTreeMap;
use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Toml};

/// One warning line per unknown key of the `.env` file at `dotenv` and the
/// TOML files in `config`, with the nearest known name when one is close.
pub(super) fn keys_in(dotenv: &Path, config: &Path) -> Vec<String> {
    let mut found: Vec<(String, String)> = Vec::new();
    if let Ok(entries) = dotenvy::from_path_iter(dotenv) {
        for (key, _) in entries.flatten() {
            found.push((key, dotenv.display().to_string()));
        }
    }
    let mut files: Vec<_> = std::fs::read_dir(config)
        .map(|dir| {
            dir.flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|e| e == "toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for path in files {
        let table: BTreeMap<String, figment::value::Value> = Figment::from(Toml::file(&path))
            .extract()
            .unwrap_or_default();
        found.extend(
            table
                .into_keys()
                .map(|key| (key, path.display().to_string())),
        );
    }
    let known = super::keys();
    found
        .into_iter()
        .filter(|(key, _)| {
            let lower = key.to_ascii_lowercase();
            !known.contains(&lower.as_str()) && !super::oauth::is_provider_key(&lower)
        })
        .map(|(key, file)| warning(&key, &file, &known))
        .collect()
}

fn warning(key: &str, file: &str, known: &[&str]) -> String {
    let lower = key.to_ascii_lowercase();
    let nearest = known
        .iter()
        .map(|k| (distance(&lower, k), *k))
        .min()
        .filter(|(d, _)| *d <= 3);
    match nearest {
        Some((_, name)) => format!(
            "{file}: {key} is no setting; did you mean {}?",
            name.to_ascii_uppercase()
        ),
        None => format!("{file}: {key} is no setting; it is ignored"),
    }
}

/// Levenshtein distance: edits (insert, delete, replace) from `a` to `b`.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let replaced = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = replaced.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_typo_is_named_with_the_setting_it_is_nearest_to() {
        let dir = std::env::temp_dir().join(format!("userhub-unknown-{}", std::process::id()));
        let config = dir.join("config");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(
            dir.join(".env"),
            "BCRYPT_COSTT=12\nPORT=8000\nOAUTH_CORP_ISSUER=x\n",
        )
        .unwrap();
        std::fs::write(
            config.join("default.toml"),
            "port = 1\nsmtp_hots = \"x\"\nzzz_totally_else = 1\n",
        )
        .unwrap();
        let warnings = keys_in(&dir.join(".env"), &config);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].ends_with("BCRYPT_COSTT is no setting; did you mean BCRYPT_COST?"));
        assert!(warnings[1].ends_with("smtp_hots is no setting; did you mean SMTP_HOST?"));
        assert!(warnings[2].ends_with("zzz_totally_else is no setting; it is ignored"));
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("port", "port"), 0);
        assert_eq!(distance("bcrypt_costt", "bcrypt_cost"), 1);
        assert_eq!(distance("smtp_hots", "smtp_host"), 2);
    }
}
