//! Who a client certificate names: the subject (common name, and the whole
//! distinguished name in RFC 4514 form) and the subject alternative names.

use std::fmt::Write;

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Name};
use x509_parser::x509::AttributeTypeAndValue;

use crate::auth::CertIdentity;

/// A verified client certificate's names, typed where `CertIdentity` lists them together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PeerCert {
    pub(super) identity: CertIdentity,
    pub(super) dns: Vec<String>,
    pub(super) email: Vec<String>,
    pub(super) uri: Vec<String>,
}

impl PeerCert {
    /// Reads a DER certificate; `None` if it does not parse.
    pub fn parse(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let subject = cert.subject();
        let mut out = PeerCert {
            identity: CertIdentity {
                common_name: subject.iter_common_name().next().map(|a| value(a).unwrap_or_else(|hex| hex)),
                subject: rfc4514(subject),
                subject_alt_names: Vec::new(),
            },
            ..PeerCert::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                let (list, text) = match name {
                    GeneralName::DNSName(n) => (&mut out.dns, n),
                    GeneralName::RFC822Name(n) => (&mut out.email, n),
                    GeneralName::URI(n) => (&mut out.uri, n),
                    _ => continue,
                };
                list.push((*text).to_owned());
                out.identity.subject_alt_names.push((*text).to_owned());
            }
        }
        Some(out)
    }
}

/// RFC 4514: the RDNs last to first, `,` between them, `+` within one.
fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| rdn.iter().map(|a| format!("{}={}", short_name(a), rfc4514_value(a))).collect::<Vec<_>>().join("+"))
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// The attribute types RFC 4514 section 3 names; others as a dotted OID.
fn short_name(attribute: &AttributeTypeAndValue<'_>) -> String {
    let oid = attribute.attr_type().to_id_string();
    let name = match oid.as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return oid,
    };
    name.to_owned()
}

/// A value as RFC 4514 writes it: text escaped, or the hex form.
fn rfc4514_value(attribute: &AttributeTypeAndValue<'_>) -> String {
    match value(attribute) {
        Ok(text) => escaped(&text),
        Err(hex) => hex,
    }
}

/// A string value as text (BMPString decoded); anything else is `Err` with
/// `#` and the hex of its DER encoding (RFC 4514 section 2.4).
fn value(attribute: &AttributeTypeAndValue<'_>) -> Result<String, String> {
    if let Ok(text) = attribute.as_str() {
        return Ok(text.to_owned());
    }
    let any = attribute.attr_value();
    let data = any.as_bytes();
    let tag = any.tag().0;
    if tag == 30 {
        let units: Vec<u16> = data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        if let Ok(text) = String::from_utf16(&units) {
            return Ok(text);
        }
    }
    let mut der = Vec::with_capacity(data.len() + 6);
    // Universal and primitive: the string and number types an attribute holds.
    der.push(u8::try_from(tag).unwrap_or(0x1e).min(0x1e));
    let len = data.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        der.push(0x80 | bytes.len() as u8);
        der.extend(bytes);
    }
    der.extend_from_slice(data);
    let mut out = String::from("#");
    for byte in der {
        let _ = write!(out, "{byte:02x}");
    }
    Err(out)
}

/// RFC 4514 section 2.4 escaping of one attribute value.
fn escaped(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    use super::*;

    fn cert(dn: &[(DnType, &str)], sans: Vec<SanType>) -> PeerCert {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut name = DistinguishedName::new();
        for (kind, v) in dn {
            name.push(kind.clone(), *v);
        }
        params.distinguished_name = name;
        params.subject_alt_names = sans;
        let der = params.self_signed(&KeyPair::generate().unwrap()).unwrap().der().to_vec();
        PeerCert::parse(&der).unwrap()
    }

    #[test]
    fn the_subject_reads_last_rdn_first_with_short_names() {
        let c = cert(
            &[(DnType::CountryName, "DE"), (DnType::OrganizationName, "Acme"), (DnType::CommonName, "dev-1")],
            vec![],
        );
        assert_eq!(c.identity.common_name.as_deref(), Some("dev-1"));
        assert_eq!(c.identity.subject, "CN=dev-1,O=Acme,C=DE");
    }

    #[test]
    fn special_characters_in_a_value_are_escaped() {
        let c = cert(&[(DnType::OrganizationName, "Quote, \"Inc\" +1"), (DnType::CommonName, " #lead")], vec![]);
        assert_eq!(c.identity.subject, "CN=\\ #lead,O=Quote\\, \\\"Inc\\\" \\+1");
    }

    #[test]
    fn alternative_names_are_kept_by_type_and_in_order() {
        let sans = vec![
            SanType::DnsName("a.example".try_into().unwrap()),
            SanType::Rfc822Name("dev@example.com".try_into().unwrap()),
            SanType::URI("urn:dev:1".try_into().unwrap()),
            SanType::DnsName("b.example".try_into().unwrap()),
        ];
        let c = cert(&[(DnType::CommonName, "x")], sans);
        assert_eq!(c.dns, ["a.example", "b.example"]);
        assert_eq!(c.email, ["dev@example.com"]);
        assert_eq!(c.uri, ["urn:dev:1"]);
        assert_eq!(c.identity.subject_alt_names, ["a.example", "dev@example.com", "urn:dev:1", "b.example"]);
    }

    #[test]
    fn a_certificate_without_a_common_name_has_none() {
        let c = cert(&[(DnType::OrganizationName, "Acme")], vec![]);
        assert_eq!(c.identity.common_name, None);
        assert_eq!(c.identity.subject, "O=Acme");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(PeerCert::parse(b"not a certificate").is_none());
    }
}
