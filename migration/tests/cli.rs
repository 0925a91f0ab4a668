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
        &["fresh", "--yes"],
        &["down", "-n", "100", "--yes"],
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
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(!text.contains("pending"), "{text}");
    assert!(text.lines().all(|l| l.starts_with("applied  m")), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn status_never_creates_the_sqlite_file() {
    let dir = scratch_dir("status-only");
    let output = migration(&dir, &["status"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(text.contains("every migration is pending"), "{text}");
    assert!(text.contains("pending  m20261125_000001"), "{text}");
    assert!(!dir.join("userhub.db").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn down_and_fresh_need_yes_when_no_one_can_be_asked() {
    let dir = scratch_dir("confirm");
    assert!(migration(&dir, &["up"], &[]).status.success());
    for args in [&["down"][..], &["fresh"]] {
        let output = migration(&dir, args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(stderr(&output).contains("--yes"), "{}", stderr(&output));
    }
    // Nothing was rolled back.
    let status = migration(&dir, &["status"], &[]);
    assert!(!String::from_utf8_lossy(&status.stdout).contains("pending"));
    let output = migration(&dir, &["down", "--yes"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("rolled back  m"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn version_and_help_speak_of_userhub_and_only_of_the_documented_commands() {
    let dir = scratch_dir("help");
    let version = migration(&dir, &["--version"], &[]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("migration (UserHub) {}", env!("CARGO_PKG_VERSION"))
    );
    let help = String::from_utf8_lossy(&migration(&dir, &["--help"], &[]).stdout).into_owned();
    for documented in ["status", "up", "down", "fresh", "--yes"] {
        assert!(help.contains(documented), "{help}");
    }
    for hidden in ["generate", "init", "refresh", "reset"] {
        assert!(!help.contains(hidden), "{help}");
    }
    let unknown = migration(&dir, &["generate", "x"], &[]);
    assert_eq!(unknown.status.code(), Some(2));
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
