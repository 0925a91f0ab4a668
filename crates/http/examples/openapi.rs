//! Prints the OpenAPI document that `/openapi.json` serves; the committed
//! copy at the repository root is refreshed with
//! `cargo run -p userhub-http --example openapi > openapi.json`.

use utoipa::OpenApi;

fn main() {
    match userhub_http::ApiDoc::openapi().to_pretty_json() {
        Ok(json) => println!("{json}"),
        Err(err) => {
            eprintln!("rendering the OpenAPI document failed: {err}");
            std::process::exit(1);
        }
    }
}
