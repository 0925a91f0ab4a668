//! `userhub-server`: reads settings, sets up logging, serves until SIGTERM/SIGINT.

use std::process::ExitCode;

use userhub_server::{Application, Settings, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    // One line per failure, with its causes and no backtrace: a wrong
    // setting is the operator's to fix (exit code 2), anything else 1.
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.rust_log, settings.log_format);
    let outcome = match Application::build(settings).await {
        Ok(app) => app.run_until_stopped().await,
        Err(err) => Err(err),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
