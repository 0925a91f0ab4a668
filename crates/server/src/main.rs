//! `userhub-server`: reads settings, sets up logging, serves until
//! SIGTERM/SIGINT; or, with `create-superuser`, makes a superuser and exits.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use secrecy::SecretString;
use userhub_server::{Application, Settings, telemetry};

const USAGE: &str = "\
usage: userhub-server [--help | --version]
       userhub-server create-superuser [--email EMAIL] [--username NAME]

Without arguments the server starts with the settings of the environment,
.env and config/*.toml (see docs/configuration.md).

create-superuser makes a superuser (migrating the database first) and exits;
an account with that e-mail or username already there is left as it is.
EMAIL and NAME default to FIRST_SUPERUSER_EMAIL and FIRST_SUPERUSER_USERNAME;
the password is FIRST_SUPERUSER_PASSWORD if set, otherwise the first line of
standard input (prompted for on a terminal), so that it need not appear in
the environment or the command line.";

/// mimalloc rather than glibc's malloc: the profile of the authenticated
/// reads spent 12–15 % of the server's CPU in the allocator (BENCHMARKS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    small_pages();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(serve()),
        Err(err) => {
            say_error(&format!("starting the runtime: {err}"));
            ExitCode::FAILURE
        }
    }
}

/// Opts the process out of transparent huge pages, before the runtime's
/// threads allocate: where the kernel's setting is `always`, every 2 MiB
/// region the allocator touches becomes resident whole: the peak resident
/// memory under load was 55–60 MB with them and 37–43 MB without
/// (BENCHMARKS.md, 2026-12-08). Nothing is lost if the kernel refuses.
fn small_pages() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

async fn serve() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("-V" | "--version") => {
            println!("userhub-server {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some("create-superuser") => {}
        Some(other) => {
            eprintln!("error: unknown argument `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    // One line per missing or wrong setting, all of them at once, with
    // their causes and no backtrace: they are the operator's to fix (exit
    // code 2); anything else is 1.
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(problems) => {
            for line in problems.lines() {
                say_error(line);
            }
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.server.rust_log, settings.server.log_format);
    for warning in &settings.unknown_keys {
        tracing::warn!("{warning}");
    }
    if !args.is_empty() {
        return create_superuser(settings, &args[1..]).await;
    }
    let outcome = match Application::build(settings).await {
        Ok(app) => app.run_until_stopped().await,
        Err(err) => Err(err),
    };
    let code = match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // The reason the process ends, once, on standard error.
        Err(err) => {
            say_error(&format!("{err:#}"));
            ExitCode::FAILURE
        }
    };
    telemetry::flush();
    code
}

/// `error: …` on standard error; unlike `eprintln!`, no panic when
/// standard error is a closed pipe.
fn say_error(message: &str) {
    let _ = writeln!(std::io::stderr(), "error: {message}");
}

/// `create-superuser [--email E] [--username U]`.
async fn create_superuser(mut settings: Settings, args: &[String]) -> ExitCode {
    for pair in args.chunks(2) {
        match pair {
            [flag, value] if flag == "--email" => {
                settings.accounts.first_superuser_email = Some(value.clone())
            }
            [flag, value] if flag == "--username" => {
                settings.accounts.first_superuser_username.clone_from(value);
            }
            _ => {
                eprintln!("error: unexpected `{}`\n\n{USAGE}", pair.join(" "));
                return ExitCode::from(2);
            }
        }
    }
    if settings.accounts.first_superuser_email.is_none() {
        eprintln!("error: create-superuser needs --email or FIRST_SUPERUSER_EMAIL");
        return ExitCode::from(2);
    }
    if settings.accounts.first_superuser_password.is_none() {
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            eprint!(
                "password for {}: ",
                settings.accounts.first_superuser_username
            );
            let _ = std::io::stderr().flush();
        }
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_err() || line.trim().is_empty() {
            eprintln!("error: no password given (FIRST_SUPERUSER_PASSWORD or standard input)");
            return ExitCode::from(2);
        }
        settings.accounts.first_superuser_password = Some(SecretString::from(
            line.trim_end_matches(['\r', '\n']).to_owned(),
        ));
    }
    let email = settings
        .accounts
        .first_superuser_email
        .clone()
        .unwrap_or_default();
    let username = settings.accounts.first_superuser_username.clone();
    // Only the bootstrap: no port is bound, nothing is served.
    match Application::create_superuser(settings).await {
        Ok(true) => {
            println!("superuser {username} <{email}> created");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!(
                "an account with the e-mail {email} or the username {username} exists; nothing changed"
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            say_error(&format!("{err:#}"));
            ExitCode::FAILURE
        }
    }
}
