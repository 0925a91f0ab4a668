//! The operators' migration CLI: `cargo run -p migration -- status|up|down|fresh`.
//!
//! It reads `DATABASE_URL` exactly as the server does (config/*.toml, `.env`,
//! the environment; empty means unset, which means the embedded SQLite file).

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use sea_orm_migration::MigrationStatus;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{Database, DatabaseConnection};
use serde::Deserialize;

const USAGE: &str = "\
usage: migration [status]          list the migrations, applied and pending
       migration up [-n N]         apply the pending ones (or the next N)
       migration down [-n N] [--yes]
                                   roll back the last one (or the last N)
       migration fresh [--yes]     drop every table and apply all (destroys data)
       migration --help | --version

DATABASE_URL is read as the server reads it (config/*.toml, .env, the
environment); empty or unset means the SQLite file ./userhub.db. `down` and
`fresh` destroy data: on a terminal they ask first, otherwise they need --yes.";

/// The one setting this binary needs.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Settings {
    database_url: String,
}

/// What to do.
enum Command {
    Status,
    Up(Option<u32>),
    Down(u32, bool),
    Fresh(bool),
}

fn parse(args: &[String]) -> Result<Command, String> {
    let mut words = args.iter().map(String::as_str);
    let command = words.next().unwrap_or("status");
    let mut steps = None;
    let mut yes = false;
    while let Some(word) = words.next() {
        match word {
            "-n" | "--num" => {
                let n = words.next().ok_or("-n needs a number")?;
                steps = Some(
                    n.parse::<u32>()
                        .map_err(|_| format!("-n {n}: not a number"))?,
                );
            }
            "-y" | "--yes" => yes = true,
            other => return Err(format!("unexpected `{other}`")),
        }
    }
    match command {
        "status" if steps.is_none() && !yes => Ok(Command::Status),
        "up" if !yes => Ok(Command::Up(steps)),
        "down" => Ok(Command::Down(steps.unwrap_or(1), yes)),
        "fresh" if steps.is_none() => Ok(Command::Fresh(yes)),
        other => Err(format!("unknown command or option for `{other}`")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("-V" | "--version") => {
            println!("migration (UserHub) {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let command = match parse(&args) {
        Ok(command) => command,
        Err(err) => {
            eprintln!("error: {err}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let settings = userhub_config::load_dotenv().and_then(|()| {
        userhub_config::layers(
            Path::new("config"),
            figment::providers::Env::raw().only(&["app_env", "database_url"]),
        )
        .extract::<Settings>()
        .map_err(|err| anyhow::anyhow!("DATABASE_URL: {}", err.kind))
    });
    let url = match settings {
        Ok(settings) => userhub_config::database_url(&settings.database_url),
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(2);
        }
    };
    let shown = userhub_config::redact(&url);
    eprintln!("database: {shown}");
    if let Command::Status = command
        && let Some(path) = missing_sqlite_file(&url)
    {
        // Looking must not create the file.
        println!("no database at {path} yet: every migration is pending");
        for migration in migration::Migrator::migrations() {
            println!("pending  {}", migration.name());
        }
        return ExitCode::SUCCESS;
    }
    if let Command::Down(_, yes) | Command::Fresh(yes) = command
        && !confirmed(yes, &command, &shown)
    {
        return ExitCode::from(2);
    }
    let db = match connect(&url).await {
        Ok(db) => db,
        Err(err) => {
            eprintln!("error: connecting to {shown}: {err}");
            return ExitCode::from(1);
        }
    };
    match run(&db, command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(1)
        }
    }
}

/// The path of an SQLite URL's file when that file does not exist.
fn missing_sqlite_file(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:" && !Path::new(path).exists()).then(|| path.to_owned())
}

/// `--yes`, or a `yes` typed at the terminal's prompt.
fn confirmed(yes: bool, command: &Command, shown: &str) -> bool {
    if yes {
        return true;
    }
    let what = match command {
        Command::Down(n, _) => {
            format!("roll back the last {n} migration(s) of {shown}, dropping their data")
        }
        _ => format!("drop every table of {shown} and apply every migration again"),
    };
    if !std::io::stdin().is_terminal() {
        eprintln!("error: this would {what}; run it again with --yes to confirm");
        return false;
    }
    eprint!("This will {what}. Type yes to go on: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim() == "yes" {
        true
    } else {
        eprintln!("nothing done");
        false
    }
}

async fn connect(url: &str) -> Result<DatabaseConnection, String> {
    probe(url).await?;
    Database::connect(url).await.map_err(|e| e.to_string())
}

async fn run(db: &DatabaseConnection, command: Command) -> Result<(), DbErr> {
    use migration::Migrator;
    match command {
        Command::Status => {
            for migration in Migrator::get_migration_with_status_read_only(db).await? {
                let state = match migration.status() {
                    MigrationStatus::Applied => "applied",
                    MigrationStatus::Pending => "pending",
                };
                println!("{state}  {}", migration.name());
            }
        }
        Command::Up(steps) => {
            let pending = Migrator::get_pending_migrations(db).await?;
            Migrator::up(db, steps).await?;
            let count = steps.map_or(pending.len(), |n| pending.len().min(n as usize));
            for migration in &pending[..count] {
                println!("applied  {}", migration.name());
            }
            if count == 0 {
                println!("nothing pending");
            }
        }
        Command::Down(steps, _) => {
            let applied = Migrator::get_applied_migrations(db).await?;
            Migrator::down(db, Some(steps)).await?;
            for migration in applied.iter().rev().take(steps as usize) {
                println!("rolled back  {}", migration.name());
            }
        }
        Command::Fresh(_) => {
            Migrator::fresh(db).await?;
            println!(
                "every table dropped; {} migrations applied",
                Migrator::migrations().len()
            );
        }
    }
    Ok(())
}

/// One direct PostgreSQL connection first: the pool would only report
/// "pool timed out" where the cause is, say, "Connection refused".
async fn probe(url: &str) -> Result<(), String> {
    use sea_orm_migration::sea_orm::sqlx::{Connection, postgres::PgConnection};
    if !url.starts_with("postgres://") {
        return Ok(());
    }
    match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("no connection within 10 s".into()),
    }
}
