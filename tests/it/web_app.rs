//! The user app and the merchant console as a browser fetches them from a real node: the
//! embedded pages and bundles, their content types, compression, cache headers, ETags and the
//! Content Security Policy. (What they do in a browser: web/e2e, run by `scripts/test`.)

use corral::http::web_app::{self, CONTENT_SECURITY_POLICY};
use reqwest::header;

use crate::support::{Engine, TestApp};

async fn fetch(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.http.get(app.url(path));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.expect("http request")
}

fn header(resp: &reqwest::Response, name: header::HeaderName) -> &str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[actix_web::test]
async fn pages_and_bundles_are_served_compressed_cached_and_locked_down() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    for page in ["/", "/console"] {
        let asset = web_app::asset(page).expect("embedded page");
        let resp = fetch(&app, page, &[("accept-encoding", "gzip, deflate, br")]).await;
        assert_eq!(resp.status(), 200, "{page}");
        assert_eq!(
            header(&resp, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert_eq!(header(&resp, header::CONTENT_ENCODING), "br");
        assert_eq!(header(&resp, header::CACHE_CONTROL), "no-cache");
        assert_eq!(
            header(&resp, header::CONTENT_SECURITY_POLICY),
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(header(&resp, header::X_FRAME_OPTIONS), "DENY");
        assert_eq!(header(&resp, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        let etag = header(&resp, header::ETAG).to_string();
        assert_eq!(etag, asset.etag);
        assert_eq!(resp.bytes().await.expect("body").as_ref(), asset.brotli);

        // Revalidation answers 304 without a body.
        let again = fetch(&app, page, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status(), 304);
        assert!(again.bytes().await.expect("body").is_empty());
    }
    let csp = CONTENT_SECURITY_POLICY;
    assert!(csp.contains("script-src 'self';") && !csp.contains("unsafe-inline"));
    assert!(csp.contains("frame-ancestors 'none'"));

    // The page's script: gzip for a client without Brotli, plain for one with neither.
    let html = std::str::from_utf8(web_app::asset("/").expect("index").raw).expect("utf-8");
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("script tag");
    let asset = web_app::asset(script).expect("script embedded");
    let resp = fetch(&app, script, &[("accept-encoding", "gzip")]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, header::CONTENT_TYPE),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(header(&resp, header::CONTENT_ENCODING), "gzip");
    assert_eq!(
        header(&resp, header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header(&resp, header::VARY), "Accept-Encoding");
    assert_eq!(resp.bytes().await.expect("body").as_ref(), asset.gzip);
    let plain = fetch(&app, script, &[("accept-encoding", "identity")]).await;
    assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
    assert_eq!(plain.bytes().await.expect("body").as_ref(), asset.raw);

    // Unknown files are a JSON not_found like any other route.
    let missing = fetch(&app, "/assets/app-NOPE.js", &[]).await;
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.expect("json error");
    assert_eq!(body["error"]["code"], "not_found");
}
