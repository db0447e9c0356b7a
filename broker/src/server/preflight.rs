//! The files a configuration names, read and parsed as the running broker
//! reads them: what `broker --check-config` checks, and what the binary
//! checks before it binds anything, so that a bad file is reported as that
//! file's fault rather than as a failure to listen.

use crate::authz::AclAuthorizer;
use crate::config::{Config, ListenerKind};

/// Reads and parses every file `config` names: the authentication files (the
/// users file, the JWT key, whatever `auth::check_files` covers), the ACL
/// file, the bans file, and the certificate, key and client CA files of every
/// enabled TLS, WSS and QUIC listener. The first error names the file, and
/// the line where it has one.
///
/// Nothing is kept: `Server::start` loads the files again. The files' mere
/// existence was checked when the configuration was parsed; this is the
/// check of their contents.
pub fn check_files(config: &Config) -> Result<(), String> {
    crate::auth::check_files(config)?;
    if let Some(path) = &config.authz.acl_file {
        AclAuthorizer::load(path, config.authz.no_match).map_err(|e| e.to_string())?;
    }
    super::limits::Limits::new(&config.limits).map_err(|e| e.to_string())?;
    for entry in config.listeners.enabled() {
        if let Some(options) = entry.tls() {
            super::certs::CertSet::load(entry.label(), options, entry.kind == ListenerKind::Quic)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("broker-preflight-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }

    #[test]
    fn the_default_configuration_names_no_file() {
        assert_eq!(check_files(&Config::default()), Ok(()));
    }

    #[test]
    fn a_bad_acl_line_is_named() {
        let acl = temp_file("acl", "allow all publish a\nallow ip:10.1.2.3/8 publish b\n");
        let mut config = Config::default();
        config.authz.acl_file = Some(acl.clone());
        let error = check_files(&config).err().unwrap_or_default();
        let _ = std::fs::remove_file(&acl);
        assert!(error.starts_with(&format!("ACL file {} line 2: ", acl.display())), "{error}");
        assert!(error.contains("did you mean 10.0.0.0/8?"), "{error}");
    }

    #[test]
    fn a_bad_bans_file_is_named() {
        let bans = temp_file("bans.json", "[{\"kind\": \"cidr\", \"value\": \"10.0.0.0/40\"}]");
        let mut config = Config::default();
        config.limits.bans_file = Some(bans.clone());
        let error = check_files(&config).err().unwrap_or_default();
        let _ = std::fs::remove_file(&bans);
        assert!(error.contains("bans_file") && error.contains(&bans.display().to_string()), "{error}");
    }

    #[test]
    fn a_certificate_file_that_is_no_certificate_is_named() {
        let junk = temp_file("junk.pem", "not a certificate\n");
        let text = format!("[listeners.tls]\nbind = \"127.0.0.1:0\"\ncert = {junk:?}\nkey = {junk:?}\n");
        let config = Config::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        let error = check_files(&config).err().unwrap_or_default();
        let _ = std::fs::remove_file(&junk);
        assert!(error.contains("[listeners.tls]") && error.contains(&junk.display().to_string()), "{error}");
    }
}
