//! TLS served by the node itself: with `server.tls_cert` and `server.tls_key` set (a
//! certificate generated here), HTTPS answers and a `wss://` client completes the protocol's
//! round trip, while a plain-text client gets nothing it can use.

use std::sync::Arc;

use corral_protocol::Role;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::claims::bulk_users;
use crate::support::{Engine, TestApp, WAIT};

/// A TLS connection to the node that trusts only `cert`.
async fn tls_connect(
    port: u16,
    cert: &rcgen::Certificate,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = RootCertStore::empty();
    roots.add(cert.der().clone()).expect("root");
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("tcp");
    let name = ServerName::try_from("localhost").expect("name");
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the node's certificate")
}

#[actix_web::test]
async fn https_and_wss_are_served_with_the_configured_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, generated.cert.pem()).expect("write cert");
    std::fs::write(&key_path, generated.signing_key.serialize_pem()).expect("write key");
    let app = TestApp::spawn_with(Engine::Sqlite, |s| {
        s.server.tls_cert = cert_path.display().to_string();
        s.server.tls_key = key_path.display().to_string();
    })
    .await;
    let (user, token) = bulk_users(&app, 1, Role::User).await.remove(0);

    // HTTPS.
    let mut tls = tls_connect(app.port, &generated.cert).await;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut answer = String::new();
    tokio::time::timeout(WAIT, tls.read_to_string(&mut answer))
        .await
        .expect("answer in time")
        .expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""status":"ok""#), "{answer}");

    // WSS: auth, then a request and its reply.
    let tls = tls_connect(app.port, &generated.cert).await;
    let mut req = format!("wss://localhost:{}/ws", app.port)
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "corral.v1".parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(req, tls)
        .await
        .expect("WebSocket upgrade over TLS");
    let mut ask = async |frame: Value| -> Value {
        ws.send(Message::text(frame.to_string()))
            .await
            .expect("send");
        loop {
            let msg = tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("reply in time")
                .expect("open")
                .expect("frame");
            if let Message::Text(text) = msg {
                let value: Value = serde_json::from_str(&text).expect("json");
                if value.get("re").is_some() {
                    return value;
                }
            }
        }
    };
    let authed = ask(json!({"id": 1, "op": "auth", "token": token})).await;
    assert_eq!(authed["ok"]["user_id"], user, "{authed}");
    let synced = ask(json!({"id": 2, "op": "time.sync", "client_time": 5})).await;
    assert_eq!(synced["ok"]["client_time"], 5, "{synced}");

    // A plain-text client on the TLS port gets no HTTP answer.
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("tcp");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut got)).await;
    assert!(
        !got.starts_with(b"HTTP/1.1 200"),
        "plain HTTP served on the TLS port"
    );
}
