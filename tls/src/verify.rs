//! Clients pinned to a cluster: [`Pinned`] accepts a server whose chain holds a certificate of the cluster key
//! (found by its fingerprint, then used as the only trust anchor) under which the leaf verifies for
//! [`PINNED_NAME`](crate::ca::PINNED_NAME). The address dialled does not matter: only the cluster key issues
//! certificates of the cluster, so trust is the key's, not a name's.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::ca::PINNED_NAME;
use crate::{provider, TlsError};

/// An ed25519 SubjectPublicKeyInfo up to its key: `SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING (0 unused) }`.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// Verifies servers against the cluster whose key has this fingerprint (`edge_trust::Fingerprint`: the first
/// 16 bytes of the key's sha256).
#[derive(Debug)]
pub struct Pinned {
    fingerprint: [u8; 16],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl Pinned {
    pub fn new(fingerprint: [u8; 16]) -> Pinned {
        Pinned { fingerprint, provider: provider() }
    }
}

/// The cluster key's fingerprint if `cert` is a certificate of an ed25519 key (its subject key, parsed by webpki).
fn ed25519_fingerprint(cert: &CertificateDer<'_>) -> Option<[u8; 16]> {
    let mut store = RootCertStore::empty();
    store.add(cert.clone().into_owned()).ok()?;
    let spki: &[u8] = store.roots.first()?.subject_public_key_info.as_ref();
    // webpki keeps the SPKI without its outer SEQUENCE header; accept it with or without.
    let key = spki.strip_prefix(&ED25519_SPKI_PREFIX[..]).or_else(|| spki.strip_prefix(&ED25519_SPKI_PREFIX[2..]))?;
    let key: &[u8; 32] = key.try_into().ok()?;
    let digest = Sha256::digest(key);
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    Some(out)
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(root) = intermediates.iter().find(|c| ed25519_fingerprint(c) == Some(self.fingerprint)) else {
            return Err(rustls::Error::General(format!(
                "the server's certificate is not from this cluster (no certificate of the cluster key sha256:{} in its chain)",
                hex::encode(self.fingerprint)
            )));
        };
        let mut roots = RootCertStore::empty();
        roots.add(root.clone().into_owned()).map_err(|e| rustls::Error::General(e.to_string()))?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let name = ServerName::try_from(PINNED_NAME).map_err(|e| rustls::Error::General(e.to_string()))?;
        webpki.verify_server_cert(end_entity, &[], &name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A client config that trusts only the cluster of `fingerprint`.
pub fn client_config(fingerprint: [u8; 16], alpn: &[&[u8]]) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned::new(fingerprint)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The cluster a client pins: `text` is a fingerprint (`sha256:` + 32 hex digits, as the controller prints it)
/// or the path of a CA file (the controller's `ca.crt`).
pub fn pin_from(text: &str) -> Result<[u8; 16], TlsError> {
    if let Ok(fp) = text.trim().parse::<edge_trust::Fingerprint>() {
        return Ok(*fp.as_bytes());
    }
    let pem = std::fs::read_to_string(text).map_err(|e| {
        TlsError::CaFile(format!("{text} is neither a cluster fingerprint (sha256:…) nor a readable CA file: {e}"))
    })?;
    fingerprint_of_ca_pem(&pem).map_err(|e| TlsError::CaFile(format!("{text}: {e}")))
}

/// The cluster fingerprint a CA file (PEM, the controller's `ca.crt`) stands for.
pub fn fingerprint_of_ca_pem(pem: &str) -> Result<[u8; 16], TlsError> {
    let der =
        pem_body(pem).ok_or_else(|| TlsError::CaFile("not a PEM certificate (-----BEGIN CERTIFICATE-----)".into()))?;
    ed25519_fingerprint(&CertificateDer::from(der))
        .ok_or_else(|| TlsError::CaFile("not the certificate of an edge cluster (an ed25519 CA)".into()))
}

/// The first certificate of a PEM text, decoded (base64 by hand: the only PEM this crate reads).
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + pem[start..].find("-----END CERTIFICATE-----")?;
    base64(&pem[start..end])
}

fn base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClusterCa;

    fn fp(key: &edge_trust::ClusterKey) -> [u8; 16] {
        *key.fingerprint().as_bytes()
    }

    #[test]
    fn the_root_carries_the_cluster_key_and_a_ca_file_names_it() {
        let key = edge_trust::ClusterKey::from_secret_bytes(&[7; 32]);
        let ca = ClusterCa::new(&key).unwrap();
        assert_eq!(fingerprint_of_ca_pem(ca.root_pem()).unwrap(), fp(&key));
        assert!(fingerprint_of_ca_pem("junk").is_err());
    }

    async fn handshake(server_key: &edge_trust::ClusterKey, pinned: [u8; 16]) -> Result<(), String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let identity = ClusterCa::new(server_key).unwrap().issue(&["127.0.0.1".into()]).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(crate::server_config(&identity, &[]).unwrap());
        let connector = tokio_rustls::TlsConnector::from(client_config(pinned, &[]).unwrap());
        let (a, b) = tokio::io::duplex(64 << 10);
        let server = tokio::spawn(async move {
            let mut s = acceptor.accept(a).await.map_err(|e| e.to_string())?;
            s.write_all(b"hi").await.map_err(|e| e.to_string())?;
            s.flush().await.map_err(|e| e.to_string())
        });
        // Any name: trust is the key's.
        let name = ServerName::try_from("anything.example").unwrap().to_owned();
        let mut c = connector.connect(name, b).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 2];
        c.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        server.await.unwrap()?;
        assert_eq!(&buf, b"hi");
        Ok(())
    }

    #[tokio::test]
    async fn a_pinned_client_accepts_its_cluster_and_refuses_another() {
        let ours = edge_trust::ClusterKey::from_secret_bytes(&[1; 32]);
        let theirs = edge_trust::ClusterKey::from_secret_bytes(&[2; 32]);
        handshake(&ours, fp(&ours)).await.unwrap();
        let refused = handshake(&theirs, fp(&ours)).await.unwrap_err();
        assert!(refused.contains("not from this cluster"), "{refused}");
    }
}
