//! TLS for client verbs: verify the server against `--tls-ca`.

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use super::client::CliError;

/// `endpoint` with TLS verified against the PEM CA in `ca`.
///
/// # Errors
/// No CA given, or an unreadable CA file.
pub fn client_tls(endpoint: Endpoint, ca: Option<&Path>) -> Result<Endpoint, CliError> {
    let Some(ca) = ca else {
        return Err(CliError::Usage(
            "an https:// endpoint needs --tls-ca FILE (the CA that signed the server certificate)"
                .into(),
        ));
    };
    let pem = std::fs::read(ca)
        .map_err(|e| CliError::Usage(format!("cannot read --tls-ca `{}`: {e}", ca.display())))?;
    endpoint
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
        .map_err(|e| CliError::Usage(format!("--tls-ca `{}`: {e}", ca.display())))
}
