//! The cluster's root certificate (self-signed by the cluster key) and the server identities it issues.
//!
//! Nothing here is stored: the root is made again at every start from the key (a trust anchor is its subject
//! and key, so a CA file written by an earlier start still anchors the certificates of a later one), and each
//! start issues its servers a new leaf with a new key. Every leaf names [`PINNED_NAME`], the name pinned
//! clients check, besides the names and addresses given for clients that check names against a CA file.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256, PKCS_ED25519,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::TlsError;

/// The DNS name every server certificate of the cluster carries, and the one pinned clients verify.
pub const PINNED_NAME: &str = "edge-controller.cluster";
/// How long an issued leaf is valid: far beyond any uptime between restarts, which re-issue it.
const LEAF_DAYS: i64 = 825;
const ROOT_DAYS: i64 = 3_650;

/// PKCS#8 v1 prefix of an ed25519 private key (RFC 8410): the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/// A certificate chain (leaf first, root last) and the leaf's private key, in DER for rustls and in PEM for
/// servers configured by files (Mosquitto's `certfile` and `keyfile`).
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The leaf then the root, PEM: the root must be sent, as pinned clients look for the cluster key in it.
    pub chain_pem: String,
    /// The leaf's private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity").field("chain", &self.chain.len()).finish_non_exhaustive()
    }
}

/// The root: its certificate, and the cluster key to issue with.
pub struct ClusterCa {
    issuer: Issuer<'static, KeyPair>,
    root: CertificateDer<'static>,
    root_pem: String,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

fn cert_err(e: rcgen::Error) -> TlsError {
    TlsError::Certificate(e.to_string())
}

impl ClusterCa {
    /// The root of the cluster whose key is `key`.
    pub fn new(key: &edge_trust::ClusterKey) -> Result<ClusterCa, TlsError> {
        let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
        pkcs8.extend_from_slice(key.secret_bytes());
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8));
        let signing = KeyPair::from_der_and_sign_algo(&der, &PKCS_ED25519).map_err(cert_err)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, format!("edge cluster {}", key.fingerprint()));
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(ROOT_DAYS);
        let root = params.self_signed(&signing).map_err(cert_err)?;
        let root_pem = root.pem();
        let root_der = root.der().clone();
        let issuer = Issuer::new(params, signing);
        Ok(ClusterCa { issuer, root: root_der, root_pem })
    }

    /// The root certificate as PEM (`ca.crt`, for `edgectl config set-context --certificate-authority`).
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// A leaf for a server reachable by `names` (DNS names or IP addresses), plus [`PINNED_NAME`].
    pub fn issue(&self, names: &[String]) -> Result<ServerIdentity, TlsError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, PINNED_NAME);
        params.distinguished_name = dn;
        let mut sans = vec![SanType::DnsName(PINNED_NAME.try_into().map_err(cert_err)?)];
        for n in names {
            let san = match n.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => match n.as_str().try_into() {
                    Ok(dns) => SanType::DnsName(dns),
                    // A host name that is not a valid DNS name (say with `_`) is left out, not fatal.
                    Err(_) => continue,
                },
            };
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(LEAF_DAYS);
        let leaf = params.signed_by(&key, &self.issuer).map_err(cert_err)?;
        Ok(ServerIdentity {
            chain: vec![leaf.der().clone(), self.root.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            chain_pem: format!("{}{}", leaf.pem(), self.root_pem),
            key_pem: key.serialize_pem(),
        })
    }
}
