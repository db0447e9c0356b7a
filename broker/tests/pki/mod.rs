//! Test certificates made by rcgen: certificate authorities, a server
//! certificate for localhost / 127.0.0.1, client certificates with chosen
//! names, the PEM files the broker reads, and rustls client configurations.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair, SanType};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as DER and PEM.
pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub pem: String,
    pub key_der: Vec<u8>,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        Self { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A server certificate for localhost and 127.0.0.1, with `cn` as its common name.
    pub fn server(&self, cn: &str) -> Leaf {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
        self.sign(params, cn)
    }

    /// A client certificate with common name `cn`, organisation `org` and DNS names `dns`.
    pub fn client(&self, cn: &str, org: &str, dns: &[&str]) -> Leaf {
        let mut params = CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>()).unwrap();
        // Organisation first and common name last in the encoding: RFC 4514 reads "CN=..,O=..".
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::OrganizationName, org);
        self.sign(params, cn)
    }

    fn sign(&self, mut params: CertificateParams, cn: &str) -> Leaf {
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf { der: cert.der().clone(), pem: cert.pem(), key_der: key.serialize_der(), key_pem: key.serialize_pem() }
    }
}

// Both this module and the other test helpers include it: a test binary
// with both has two copies of a small type, which is harmless.
#[allow(clippy::duplicate_mod)]
#[path = "../test_dir/mod.rs"]
mod test_dir;
pub use test_dir::TestDir;

/// A fresh directory for one test's files, removed when dropped.
pub fn dir(name: &str) -> TestDir {
    TestDir::new("broker-pki", name)
}

pub fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Writes `server.pem`, `server.key` and `ca.pem` (the client CA) into `dir`.
pub fn write_server_files(dir: &Path, server: &Leaf, client_ca: &Ca) {
    write(dir, "server.pem", &server.pem);
    write(dir, "server.key", &server.key_pem);
    write(dir, "ca.pem", &client_ca.pem());
}

/// The TLS keys of a listener reading the files of [`write_server_files`].
pub fn listener_keys(dir: &Path, mutual: bool) -> String {
    let mut keys = format!("cert = {:?}\nkey = {:?}\n", dir.join("server.pem"), dir.join("server.key"));
    if mutual {
        keys += &format!("client_ca = {:?}\n", dir.join("ca.pem"));
    }
    keys
}

/// A rustls client trusting `ca`, presenting `client` if given, offering `alpn`.
pub fn client_config(ca: &Ca, client: Option<&Leaf>, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some(leaf) => {
            let key = PrivateKeyDer::try_from(leaf.key_der.clone()).unwrap();
            builder.with_client_auth_cert(vec![leaf.der.clone()], key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    config
}
