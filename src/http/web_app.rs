//! The user app (`GET /`) and the merchant console (`GET /console`), served from assets
//! embedded in the binary: `web/build.mjs` bundles `web/src` into `web/dist` (hashed file
//! names, each with a precompressed `.br` and `.gz` twin) and writes `web/dist/assets.rs`, the
//! table included here. So a node serves both apps with nothing else installed, and
//! `node web/build.mjs --check` (run by CI) fails when the committed assets differ from what
//! the sources build.
//!
//! Hashed assets are cached for a year (`immutable`); the two HTML pages are revalidated on
//! every load (`no-cache` with an `ETag`), carry a Content Security Policy that allows only
//! the node's own scripts, styles and sockets (no inline script, nothing from elsewhere), and
//! are never framed.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use corral_protocol::ErrorCode;

use crate::http::ApiError;
use crate::http::responses::NotFound;
use crate::http::table::ApiRoute;

/// One embedded file, with its precompressed forms.
pub struct Asset {
    /// The path it is served at (`/`, `/console`, `/assets/<name>-<hash>.<ext>`).
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Whether its name carries its content hash (cached for good).
    pub immutable: bool,
    /// A strong validator: the SHA-256 prefix of `raw`, quoted.
    pub etag: &'static str,
    /// The bytes as built.
    pub raw: &'static [u8],
    /// gzip (level 9).
    pub gzip: &'static [u8],
    /// Brotli (quality 11).
    pub brotli: &'static [u8],
}

include!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/dist/assets.rs"));

/// What the HTML pages may load: only this node's scripts, styles, images and sockets.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The app routes, at the root.
pub const ROUTES: &[ApiRoute] = &[
    ApiRoute {
        method: Method::GET,
        path: "/",
        handler: |r| r.to(user_app),
    },
    ApiRoute {
        method: Method::GET,
        path: "/console",
        handler: |r| r.to(console),
    },
    ApiRoute {
        method: Method::GET,
        path: "/assets/{file}",
        handler: |r| r.to(asset_file),
    },
];

/// The embedded file served at `path`.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// Which encoding to send: Brotli, then gzip, when the client accepts it (`q=0` refuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `br`.
    Brotli,
    /// `gzip`.
    Gzip,
    /// As built.
    Identity,
}

/// Picks the encoding from an `Accept-Encoding` value.
pub fn negotiate(accept: &str) -> Encoding {
    let accepts = |name: &str| {
        accept.split(',').any(|part| {
            let mut fields = part.split(';').map(str::trim);
            let coding = fields.next().unwrap_or_default();
            let refused = fields.any(|f| {
                f.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            coding.eq_ignore_ascii_case(name) && !refused
        })
    };
    if accepts("br") {
        Encoding::Brotli
    } else if accepts("gzip") {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

/// The user app (embedded in the binary)
#[utoipa::path(
    get,
    path = "/",
    operation_id = "userApp",
    tag = "apps",
    security(()),
    responses(
        (status = 200, description = "The page (HTML; Content-Security-Policy allows only this node's scripts, styles and sockets; no-cache with ETag)", body = String, content_type = "text/html; charset=utf-8"),
        (status = 304, description = "Not modified (If-None-Match); no body"),
    )
)]
pub async fn user_app(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    page(req).await
}

/// The merchant console (embedded in the binary)
#[utoipa::path(
    get,
    path = "/console",
    operation_id = "merchantConsole",
    tag = "apps",
    security(()),
    responses(
        (status = 200, description = "The page (HTML; Content-Security-Policy allows only this node's scripts, styles and sockets; no-cache with ETag)", body = String, content_type = "text/html; charset=utf-8"),
        (status = 304, description = "Not modified (If-None-Match); no body"),
    )
)]
pub async fn console(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    page(req).await
}

/// A script or stylesheet of the apps: content-hashed name, cached for a year (immutable), Brotli or gzip by Accept-Encoding
#[utoipa::path(
    get,
    path = "/assets/{file}",
    operation_id = "appAsset",
    tag = "apps",
    security(()),
    params(("file" = String, Path, description = "A content-hashed file name the pages link to")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/javascript; charset=utf-8"),
            (String = "text/css; charset=utf-8"),
        )),
        (status = 304, description = "Not modified (If-None-Match); no body"),
        (status = 404, response = NotFound),
    )
)]
pub async fn asset_file(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    page(req).await
}

/// Answers any of the embedded files (the page or asset at the request's path).
async fn page(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let asset =
        asset(req.path()).ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such file"))?;
    let cache = if asset.immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == asset.etag));
    let mut resp = if fresh {
        HttpResponse::build(StatusCode::NOT_MODIFIED)
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, asset.etag))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if asset.content_type.starts_with("text/html") {
        resp.insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
            .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    }
    if fresh {
        return Ok(resp.finish());
    }
    let accept = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (body, coding) = match negotiate(accept) {
        Encoding::Brotli => (asset.brotli, Some("br")),
        Encoding::Gzip => (asset.gzip, Some("gzip")),
        Encoding::Identity => (asset.raw, None),
    };
    if let Some(coding) = coding {
        resp.insert_header((header::CONTENT_ENCODING, HeaderValue::from_static(coding)));
    }
    Ok(resp
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .body(body))
}

/// Registers the app routes (they are also in [`super::documented_routes`]).
pub fn register(cfg: &mut web::ServiceConfig) {
    super::table::register(cfg, ROUTES, |_| true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brotli_is_preferred_and_q_zero_refuses() {
        assert_eq!(negotiate("gzip, deflate, br, zstd"), Encoding::Brotli);
        assert_eq!(negotiate("gzip"), Encoding::Gzip);
        assert_eq!(negotiate("br;q=0, gzip;q=0.5"), Encoding::Gzip);
        assert_eq!(negotiate("identity"), Encoding::Identity);
        assert_eq!(negotiate(""), Encoding::Identity);
    }

    #[test]
    fn both_pages_and_their_scripts_are_embedded() {
        for path in ["/", "/console"] {
            let page = asset(path).expect("page embedded");
            assert!(page.content_type.starts_with("text/html"));
            assert!(!page.immutable);
            let html = std::str::from_utf8(page.raw).expect("utf-8");
            assert!(!html.contains("<script>"), "no inline script in {path}");
            for src in html.split("src=\"").skip(1) {
                let src = src.split('"').next().unwrap_or_default();
                let script = asset(src).expect("script embedded");
                assert!(script.immutable);
                assert!(script.brotli.len() < script.raw.len());
            }
        }
    }
}
