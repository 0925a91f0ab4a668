//! The operators' CLI reads its settings as the server does: run from a
//! fresh directory with the example `.env` copied unchanged, it uses the
//! embedded SQLite file, and `up`, `fresh`, `down` to zero and `up` again work.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("userhub-migration-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn migration(dir: &PathBuf, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_migration"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("APP_ENV");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn with_the_example_env_file_it_migrates_the_default_sqlite_file() {
    let dir = scratch_dir("example-env");
    std::fs::write(dir.join(".env"), include_str!("../../.env.example")).unwrap();
    for args in [
        &["status"][..],
        &["up"],
        &["fresh"],
        &["down", "-n", "100"],
        &["up"],
        &["status"],
    ] {
        let output = migration(&dir, args, &[]);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("database: sqlite://userhub.db?mode=rwc"),
            "{}",
            stderr(&output)
        );
    }
    assert!(dir.join("userhub.db").exists());
    let status = migration(&dir, &["status"], &[]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned() + &stderr(&status);
    assert!(!text.contains("Pending"), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_empty_database_url_means_the_default_and_other_files_are_created() {
    let dir = scratch_dir("empty-url");
    let output = migration(&dir, &["up"], &[("DATABASE_URL", "")]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(dir.join("userhub.db").exists());
    let output = migration(&dir, &["up"], &[("DATABASE_URL", "sqlite://other.db")]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(dir.join("other.db").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_refused_connection_is_one_line_that_says_so() {
    let dir = scratch_dir("refused");
    let output = migration(
        &dir,
        &["status"],
        &[(
            "DATABASE_URL",
            "postgresql+asyncpg://app:s3cret@127.0.0.1:1/userhub",
        )],
    );
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    let error: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error.len(), 1, "{text}");
    assert!(error[0].contains("Connection refused"), "{text}");
    assert!(
        error[0].contains("postgres://app:***@127.0.0.1:1/userhub"),
        "{text}"
    );
    assert!(
        !text.contains("s3cret") && !text.contains("panicked"),
        "{text}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
