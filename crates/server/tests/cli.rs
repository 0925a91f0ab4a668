//! The server binary as an operator meets it: a production start with
//! settings missing lists them all at once, a typo in `.env` is named with
//! the setting it is nearest to, a database that is not there is one line,
//! and `create-superuser` says what it did without serving.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("userhub-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The server in `dir`, with only `env` set (and PATH).
fn server(dir: &PathBuf, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_userhub-server"));
    command.args(args).current_dir(dir).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command.env("RUST_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_production_start_lists_every_missing_setting_then_exits_2() {
    let dir = scratch_dir("production");
    let output = server(
        &dir,
        &[],
        &[("APP_ENV", "production"), ("BCRYPT_COST", "4")],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    for setting in [
        "BCRYPT_COST",
        "SMTP_HOST",
        "PUBLIC_URL",
        "MFA_ENCRYPTION_KEY",
        "JWT_SECRET_KEY",
    ] {
        assert_eq!(
            lines
                .iter()
                .filter(|l| {
                    l.strip_prefix("error: ")
                        .and_then(|l| l.strip_prefix(setting))
                        .is_some_and(|rest| rest.starts_with([' ', '=']))
                })
                .count(),
            1,
            "{setting}: {stderr}"
        );
    }
    assert_eq!(lines.len(), 5, "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn create_superuser_says_what_it_did_warns_of_typos_and_serves_nothing() {
    let dir = scratch_dir("superuser");
    std::fs::write(dir.join(".env"), "BCRYPT_COSTT=12\n").unwrap();
    let env = [
        ("DATABASE_URL", "sqlite://admin.db?mode=rwc"),
        ("FIRST_SUPERUSER_PASSWORD", "Correct-Horse-Battery-9"),
    ];
    let args = [
        "create-superuser",
        "--email",
        "boss@example.com",
        "--username",
        "boss",
    ];
    let first = server(&dir, &args, &env);
    assert!(first.status.success(), "{}", text(&first.stderr));
    // The logs share standard output; what it did is the last line.
    let said = text(&first.stdout);
    assert_eq!(
        said.lines().last(),
        Some("superuser boss <boss@example.com> created"),
        "{said}"
    );
    let logs = text(&first.stderr) + &text(&first.stdout);
    assert!(
        logs.contains(".env: BCRYPT_COSTT is no setting; did you mean BCRYPT_COST?"),
        "{logs}"
    );
    assert!(!logs.contains("listening"), "{logs}");
    let again = server(&dir, &args, &env);
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("exists; nothing changed"),
        "{}",
        text(&again.stdout)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_database_that_is_not_there_is_one_line_with_its_cause_once() {
    let dir = scratch_dir("database");
    let output = server(
        &dir,
        &[],
        &[(
            "DATABASE_URL",
            "postgres://nobody:s3cret@127.0.0.1:1/userhub",
        )],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("Connection refused"), "{stderr}");
    assert_eq!(
        errors[0].matches("Connection refused").count(),
        1,
        "{stderr}"
    );
    assert!(
        !stderr.contains("s3cret") && !stderr.contains(" at line "),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_configured_providers_are_logged_at_start_without_their_secrets() {
    use std::io::{BufRead, BufReader};
    let dir = scratch_dir("providers");
    let mut command = Command::new(env!("CARGO_BIN_EXE_userhub-server"));
    command
        .current_dir(&dir)
        .env_clear()
        .env("RUST_LOG", "info")
        .env("PORT", "0")
        .env("DATABASE_URL", "sqlite://providers.db?mode=rwc")
        .env("OAUTH_PROVIDERS", "corp")
        .env("OAUTH_CORP_ISSUER", "https://id.example.com")
        .env("OAUTH_CORP_CLIENT_ID", "userhub")
        .env("OAUTH_CORP_CLIENT_SECRET", "very-secret-value")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        let listening = line.contains("listening on");
        seen.push(line);
        if listening {
            break;
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    let logs = seen.join("\n");
    assert!(
        seen.iter()
            .any(|l| l.contains("sign-in provider configured")
                && l.contains("provider=corp")
                && l.contains("issuer=https://id.example.com")),
        "{logs}"
    );
    assert!(!logs.contains("very-secret-value"), "{logs}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The serving process is opted out of transparent huge pages (each 2 MiB
/// region the allocator touched would otherwise be resident whole).
#[cfg(target_os = "linux")]
#[test]
fn the_server_runs_without_transparent_huge_pages() {
    use std::io::{BufRead, BufReader};
    let dir = scratch_dir("pages");
    let mut child = Command::new(env!("CARGO_BIN_EXE_userhub-server"))
        .current_dir(&dir)
        .env_clear()
        .env("RUST_LOG", "info")
        .env("PORT", "0")
        .env("DATABASE_URL", "sqlite://pages.db?mode=rwc")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines() {
        if line.unwrap().contains("listening on") {
            break;
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    let flag = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(str::trim);
    assert_eq!(flag, Some("0"), "{status}");
    std::fs::remove_dir_all(dir).unwrap();
}
