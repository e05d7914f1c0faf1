//! TLS served by the node itself: the rustls server configuration built from the PEM files
//! named by `server.tls_cert` and `server.tls_key` (ring as the crypto provider, TLS 1.2 and
//! 1.3, HTTP/1.1 offered by ALPN, as the WebSocket upgrade needs).

use std::path::Path;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// One of the two files is set and the other is not.
    #[error("server.tls_cert and server.tls_key must be set together (or both left empty)")]
    Half,
    /// A file could not be read or holds no PEM of the expected kind.
    #[error("server.{key}: cannot read {path}: {source}")]
    File {
        /// The config key naming the file.
        key: &'static str,
        /// The path.
        path: String,
        /// What went wrong.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("server.tls_cert: {0} holds no PEM certificate")]
    NoCertificate(String),
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("TLS certificate and key refused: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The server configuration when TLS is configured, `None` for plain HTTP.
pub fn server_config(cert: &str, key: &str) -> Result<Option<ServerConfig>, TlsError> {
    match (cert.is_empty(), key.is_empty()) {
        (true, true) => return Ok(None),
        (false, false) => {}
        _ => return Err(TlsError::Half),
    }
    let file_error = |key: &'static str, path: &str| {
        let path = path.to_string();
        move |source| TlsError::File { key, path, source }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(Path::new(cert))
        .map_err(file_error("tls_cert", cert))?
        .collect::<Result<_, _>>()
        .map_err(file_error("tls_cert", cert))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_string()));
    }
    let private =
        PrivateKeyDer::from_pem_file(Path::new(key)).map_err(file_error("tls_key", key))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_when_both_are_empty_and_an_error_when_half_set() {
        assert!(matches!(server_config("", ""), Ok(None)));
        assert!(matches!(server_config("cert.pem", ""), Err(TlsError::Half)));
        assert!(matches!(server_config("", "key.pem"), Err(TlsError::Half)));
    }

    #[test]
    fn a_missing_file_names_its_key_and_path() {
        let err = server_config("/nonexistent/cert.pem", "/nonexistent/key.pem")
            .expect_err("missing files");
        let text = err.to_string();
        assert!(
            text.contains("server.tls_cert") && text.contains("/nonexistent/cert.pem"),
            "{text}"
        );
    }
}
