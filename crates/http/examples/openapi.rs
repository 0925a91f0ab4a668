//! Prints the OpenAPI document that `/openapi.json` serves, or, given a
//! path, writes it there through a temporary file (so that the committed
//! copy is never left empty): `cargo run -p userhub-http --example openapi -- openapi.json`.

use utoipa::OpenApi;

fn main() {
    let json = match userhub_http::ApiDoc::openapi().to_pretty_json() {
        Ok(json) => json,
        Err(err) => {
            eprintln!("rendering the OpenAPI document failed: {err}");
            std::process::exit(1);
        }
    };
    let Some(path) = std::env::args().nth(1) else {
        println!("{json}");
        return;
    };
    let temporary = format!("{path}.tmp");
    let written = std::fs::write(&temporary, format!("{json}\n"))
        .and_then(|()| std::fs::rename(&temporary, &path));
    if let Err(err) = written {
        eprintln!("writing {path} failed: {err}");
        std::process::exit(1);
    }
}
