//! The browser console at `/admin/`: plain ES modules and a stylesheet,
//! compiled into the binary (no build step, nothing from another origin).
//! docs/decisions/0009 says why it is built this way.

use std::sync::LazyLock;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// What the console needs to know of the server's configuration.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConsoleSettings {
    /// The configured OpenID providers' names, one sign-in button each.
    pub providers: Vec<String>,
}

/// The console's policy: its own files only, and never inside a frame.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; frame-ancestors 'none'";

/// One file of the console.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! assets {
    ($($name:literal => $content_type:expr),* $(,)?) => {
        [$(Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../console/", $name)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: [Asset; 16] = assets! {
    "index.html" => "text/html; charset=utf-8",
    "console.css" => "text/css; charset=utf-8",
    "icon.svg" => "image/svg+xml",
    "main.js" => JS,
    "dom.js" => JS,
    "api.js" => JS,
    "webauthn.js" => JS,
    "widgets.js" => JS,
    "signin.js" => JS,
    "account.js" => JS,
    "security.js" => JS,
    "users.js" => JS,
    "user.js" => JS,
    "audit.js" => JS,
    "webhooks.js" => JS,
    "vendor/uqr.mjs" => JS,
};

/// Each asset's validator, a digest of its bytes.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.bytes);
            format!("\"{}\"", hex(&digest[..12]))
        })
        .collect()
});

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Registers `/admin/` and its files when the console is on.
pub(crate) fn configure(cfg: &mut web::ServiceConfig, settings: Option<ConsoleSettings>) {
    let Some(settings) = settings else { return };
    // Paths arrive without their trailing slash (the normalising middleware).
    cfg.app_data(web::Data::new(settings))
        .route("/admin", web::get().to(index))
        .route("/admin/config.json", web::get().to(config))
        .route("/admin/{file:.+}", web::get().to(file));
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, 0)
}

async fn file(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let position = ASSETS
        .iter()
        .position(|asset| asset.name == name.as_str())
        .ok_or(ApiError::NotFound("Not Found"))?;
    Ok(serve(&req, position))
}

/// `GET /admin/config.json`: the sign-in page's provider buttons.
async fn config(settings: web::Data<ConsoleSettings>) -> HttpResponse {
    with_policy(&mut HttpResponse::Ok())
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .json(settings.get_ref())
}

/// Wraps the provider callbacks: a browser the provider sent back gets the
/// console's page, which then calls the same URL for JSON (with the
/// session's bearer token, for linking). Scripts and other front ends get
/// the API as before; so does everyone when the console is off.
pub(crate) async fn callback_page(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    match page_for_navigation(req.request()) {
        Some(page) => Ok(req.into_response(page)),
        None => Ok(next.call(req).await?.map_into_boxed_body()),
    }
}

fn page_for_navigation(req: &HttpRequest) -> Option<HttpResponse> {
    let console_on = req.app_data::<web::Data<ConsoleSettings>>().is_some();
    (console_on && is_navigation(req)).then(|| {
        let mut response = serve(req, 0);
        // Any stored copy would be served for the next sign-in's URL too.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    })
}

/// A browser loading a page, rather than a script asking for JSON.
fn is_navigation(req: &HttpRequest) -> bool {
    let headers = req.headers();
    if let Some(mode) = headers.get("sec-fetch-mode") {
        return mode.as_bytes() == b"navigate";
    }
    headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.starts_with("text/html"))
}

fn serve(req: &HttpRequest, position: usize) -> HttpResponse {
    let (asset, etag) = (&ASSETS[position], &ETAGS[position]);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|sent| sent.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    with_policy(&mut response)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::ETAG, etag.as_str()))
        .content_type(asset.content_type);
    if fresh {
        response.finish()
    } else {
        response.body(asset.bytes)
    }
}

fn with_policy(response: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    response
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::ASSETS;

    fn console_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("console")
    }

    fn files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().unwrap().is_dir() {
                files(&entry.path(), &format!("{name}/"), out);
            } else if !name.ends_with("LICENSE") {
                out.push(name);
            }
        }
    }

    #[test]
    fn every_file_of_the_console_is_served() {
        let mut on_disk = Vec::new();
        files(&console_dir(), "", &mut on_disk);
        on_disk.sort();
        let mut served: Vec<String> = ASSETS.iter().map(|a| a.name.to_owned()).collect();
        served.sort();
        assert_eq!(on_disk, served);
    }

    /// The policy forbids inline code, and values are shown as text only.
    #[test]
    fn no_inline_code_and_no_markup_from_strings() {
        for asset in &ASSETS {
            let text = std::str::from_utf8(asset.bytes).unwrap();
            for forbidden in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
            ] {
                assert!(!text.contains(forbidden), "{} uses {forbidden}", asset.name);
            }
            for forbidden in ["eval(", "new Function", "localStorage", "document.cookie"] {
                assert!(!text.contains(forbidden), "{} uses {forbidden}", asset.name);
            }
        }
        let index = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        assert!(!index.contains("<style"), "inline style in index.html");
        assert!(!index.contains(" style="), "inline style in index.html");
        assert_eq!(
            index.matches("<script").count(),
            index.matches("<script type=\"module\" src=").count(),
            "inline script in index.html"
        );
    }
}
