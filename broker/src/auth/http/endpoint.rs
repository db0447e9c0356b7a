//! The callout's URL, checked once at start-up so that a bad one stops the
//! broker instead of failing every CONNECT.

use hyper::Uri;
use rustls_pki_types::ServerName;

/// Where the service listens: `http[s]://host[:port]/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`, for name resolution.
    pub host_port: String,
    /// The Host header.
    pub authority: String,
    pub path: String,
    /// For `https://`: the name the service's certificate must carry, sent as
    /// SNI. None: plain HTTP.
    pub tls_name: Option<ServerName<'static>>,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self, String> {
        let (rest, default_port, https) = if let Some(rest) = url.strip_prefix("https://") {
            (rest, 443, true)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (rest, 80, false)
        } else {
            return Err("expected http://host[:port]/path or https://host[:port]/path".into());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err("expected a host (and no user info) after the scheme".into());
        }
        if authority.chars().any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#') {
            return Err("the host contains white space, control characters, '?' or '#'".into());
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the path contains white space or control characters".into());
        }
        // Checked here because the request is built from it on every call.
        if path.parse::<Uri>().is_err() || path.contains('#') {
            return Err(format!("the path {path:?} is not a valid request path"));
        }
        let (host, port) = split_host_port(authority)?;
        if host.is_empty() {
            return Err("expected a host (and no user info) after the scheme".into());
        }
        let port = match port {
            Some(port) => port.parse::<u16>().map_err(|_| format!("port {port:?} is not a number from 0 to 65535"))?,
            None => default_port,
        };
        let tls_name = if https {
            // An IP literal is matched against the certificate's IP addresses, a name against its DNS names.
            let name = ServerName::try_from(host.to_owned())
                .map_err(|_| format!("{host:?} is neither a DNS name nor an IP address (needed to verify https)"))?;
            Some(name)
        } else {
            None
        };
        let bracketed = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
        Ok(Self {
            host_port: format!("{bracketed}:{port}"),
            authority: authority.to_owned(),
            path: path.to_owned(),
            tls_name,
        })
    }
}

/// `host` (brackets of an IPv6 literal removed) and the port text, if any.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an IPv6 address without its closing ']'")?;
        return match after {
            "" => Ok((host, None)),
            _ => after
                .strip_prefix(':')
                .map(|port| (host, Some(port)))
                .ok_or_else(|| "expected ':port' after ']'".into()),
        };
    }
    Ok(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, String, String, Option<String>) {
        let e = Endpoint::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        (e.host_port, e.authority, e.path, e.tls_name.map(|n| n.to_str().into_owned()))
    }

    #[test]
    fn http_urls_parse_into_endpoints() {
        let plain = |h: &str, a: &str, p: &str| (h.to_owned(), a.to_owned(), p.to_owned(), None);
        assert_eq!(
            parts("http://auth.local:8080/mqtt/auth"),
            plain("auth.local:8080", "auth.local:8080", "/mqtt/auth")
        );
        assert_eq!(parts("http://127.0.0.1"), plain("127.0.0.1:80", "127.0.0.1", "/"));
        assert_eq!(parts("http://[::1]/a"), plain("[::1]:80", "[::1]", "/a"));
        assert_eq!(parts("http://[::1]:81/a?x=1"), plain("[::1]:81", "[::1]:81", "/a?x=1"));
    }

    #[test]
    fn https_urls_carry_the_name_the_certificate_must_have() {
        let (host_port, authority, path, name) = parts("https://auth.example.com/check");
        assert_eq!(
            (host_port.as_str(), authority.as_str(), path.as_str()),
            ("auth.example.com:443", "auth.example.com", "/check")
        );
        assert_eq!(name.as_deref(), Some("auth.example.com"));
        assert_eq!(parts("https://127.0.0.1:8443/").3.as_deref(), Some("127.0.0.1"));
        let (host_port, _, _, name) = parts("https://[::1]:8443/");
        assert_eq!((host_port.as_str(), name.as_deref()), ("[::1]:8443", Some("::1")));
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, says) in [
            ("ftp://a", "http://"),
            ("http:///a", "host"),
            ("http://u@a/", "user info"),
            ("http://a:99999/", "port"),
            ("http://a:/", "port"),
            ("http://:80/", "host"),
            ("http://a/b c", "white space"),
            ("http://a?b", "'?'"),
            ("http://a/b#c", "request path"),
            ("http://a/b<c", "request path"),
            ("http://[::1/", "closing"),
            ("http://[::1]x/", "':port'"),
            ("https://under_score!/", "DNS name"),
        ] {
            let error = Endpoint::parse(url).expect_err(url);
            assert!(error.contains(says), "{url}: {error}");
        }
    }
}
