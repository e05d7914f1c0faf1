//! The OpenAPI document served at `GET /api/v1/openapi.json`: generated from the handlers, it
//! must describe exactly the routes the server registers, be a valid OpenAPI 3 document (read
//! by `oas3`, a parser independent of the generator), name every operation, and give every
//! success response a schema.

use std::collections::{BTreeSet, HashSet};

use corral::http::payments::{NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use serde_json::Value;

use crate::support::{Engine, TestApp};

/// Every `$ref` in `value`, wherever it is nested.
fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                found.push(target);
            }
            map.values().for_each(|v| refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

#[actix_web::test]
async fn the_openapi_document_lists_every_route() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let (status, doc) = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    let routes = corral::http::documented_routes();
    assert!(routes.len() >= 19);
    for (method, path) in &routes {
        let op = &doc["paths"][path][method.as_str().to_lowercase()];
        assert!(op.is_object(), "{method} {path} is not in the document");
        assert!(
            op["responses"].is_object(),
            "{method} {path} has no responses"
        );
    }
    // And nothing documented is missing from the server, path or method.
    let served: HashSet<(String, String)> = routes
        .into_iter()
        .map(|(m, p)| (m.as_str().to_lowercase(), p))
        .collect();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            assert!(
                served.contains(&(method.clone(), path.clone())),
                "{method} {path} is documented but not served"
            );
        }
    }
}

#[actix_web::test]
async fn every_operation_is_named_and_every_success_has_a_schema() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let (status, doc) = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    let spec = oas3::from_json(doc.to_string()).expect("a valid OpenAPI 3 document");
    spec.validate_version()
        .expect("a supported OpenAPI version");

    let mut ids = HashSet::new();
    let mut operations = 0;
    for (path, method, op) in spec.operations() {
        operations += 1;
        let id = op.operation_id.as_deref().unwrap_or_default();
        assert!(!id.is_empty(), "{method} {path} has no operationId");
        assert!(
            id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{method} {path}: operationId {id:?} is not camelCase or snake_case"
        );
        assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
        let declared = op.responses.as_ref().map_or(0, |r| r.len());
        let responses = op.responses(&spec);
        assert_eq!(
            responses.len(),
            declared,
            "{method} {path}: a response $ref does not resolve"
        );
        assert!(
            responses.keys().any(|s| s.starts_with('2') || s == "101"),
            "{method} {path} documents no success"
        );
        for (code, response) in &responses {
            if !code.starts_with('2') {
                continue;
            }
            // A success either carries a body with a schema or is a 204 with none.
            if code == "204" {
                assert!(
                    response.content.is_empty(),
                    "{method} {path}: 204 with a body"
                );
                continue;
            }
            assert!(
                !response.content.is_empty(),
                "{method} {path}: {code} has no content"
            );
            for (media, content) in &response.content {
                assert!(
                    content.schema.is_some(),
                    "{method} {path}: {code} {media} has no schema"
                );
            }
        }
        if let Ok(Some(body)) = op.request_body(&spec) {
            for (media, content) in &body.content {
                assert!(
                    content.schema.is_some(),
                    "{method} {path}: request {media} has no schema"
                );
            }
        }
    }
    assert_eq!(operations, corral::http::documented_routes().len());

    // Every reference points at a component that exists.
    let mut targets = Vec::new();
    refs(&doc, &mut targets);
    assert!(!targets.is_empty());
    for target in targets {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{target} is not a local reference"));
        assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
    }
    // Type aliases (`UserId`, `EpochMs`) are documented as what they are, never as a
    // component named after a Rust primitive.
    let schemas: BTreeSet<&String> = doc["components"]["schemas"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    for primitive in ["i64", "i32", "u32", "u64", "usize", "String", "bool"] {
        assert!(
            !schemas.contains(&primitive.to_string()),
            "a schema is named {primitive}: {schemas:?}"
        );
    }
    // The one error shape backs every error response, and 429 says when to retry.
    let errors = &doc["components"]["responses"];
    for name in [
        "BadRequest",
        "Unauthenticated",
        "Forbidden",
        "NotFound",
        "Conflict",
        "TooLarge",
        "RateLimited",
        "Unavailable",
    ] {
        assert_eq!(
            errors[name]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Error",
            "{name}"
        );
    }
    assert!(errors["RateLimited"]["headers"]["Retry-After"].is_object());
    // Bearer tokens by default; the public routes say they need none.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"][0]["bearer"], Value::Array(vec![]));
    let login = &doc["paths"]["/api/v1/auth/login"]["post"];
    assert_eq!(login["security"], serde_json::json!([{}]));
    assert!(doc["paths"]["/api/v1/timeline"]["get"]["security"].is_null());
    // The webhook's signed headers are the ones the handler reads.
    let headers: Vec<&str> = doc["paths"]["/api/v1/payments/webhook"]["post"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "header" && p["required"] == true)
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(headers, [TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER]);
}
