//! `userhub-server`: reads settings, sets up logging, serves until SIGTERM/SIGINT.

use userhub_server::{Application, Settings, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(&settings.rust_log, settings.log_format);
    let app = Application::build(settings).await?;
    app.run_until_stopped().await
}
