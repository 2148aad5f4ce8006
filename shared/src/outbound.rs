//! The SSRF guard of every outgoing HTTP call a user can aim (the worker's `http` kind, webhook
//! endpoints): only `http(s)`, every address of the host checked before connecting, loopback,
//! private, link-local and similar addresses refused unless allow-listed, the connection pinned
//! to the checked addresses (no DNS rebinding) and no redirects (a redirect could point inside).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Why a header a user gave may not be sent on an outgoing call, or `None` when it may: the
/// platform's internal headers (`x-taskmesh-*`, which no service obeys but no caller should
/// imitate either), `Host` (which would aim the request at another virtual host than the checked
/// one), and the hop-by-hop and framing headers the client sets itself.
pub fn refused_header(name: &str) -> Option<&'static str> {
    let lower = name.trim().to_ascii_lowercase();
    if lower.starts_with(crate::identity::INTERNAL_HEADER_PREFIX) {
        return Some("x-taskmesh-* headers are the platform's own");
    }
    const HOP_BY_HOP: [&str; 10] = [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    ];
    if lower == "host" {
        Some("Host is set from the URL")
    } else if HOP_BY_HOP.contains(&lower.as_str()) {
        Some("hop-by-hop and framing headers are set by the client")
    } else {
        None
    }
}

/// Why a URL may not be called.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// It never will be (wrong scheme, no host, an internal address): a permanent failure.
    #[error("{0}")]
    Forbidden(String),
    /// Its name does not resolve now: may pass later.
    #[error("{0}")]
    Unresolved(String),
}

/// Which otherwise refused addresses may be called: host names, IP addresses and CIDR ranges.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    hosts: Vec<String>,
    nets: Vec<ipnet::IpNet>,
}

impl AllowList {
    /// Parses `entries`; an error names `setting`.
    pub fn parse(setting: &str, entries: &[String]) -> anyhow::Result<Self> {
        let mut list = AllowList::default();
        for entry in entries {
            let entry = entry.trim();
            let bad = || anyhow::anyhow!("{setting}: bad CIDR {entry:?}");
            if entry.contains('/') {
                list.nets.push(entry.parse().map_err(|_| bad())?);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                list.nets.push(ip.into());
            } else {
                list.hosts.push(entry.to_ascii_lowercase());
            }
        }
        Ok(list)
    }

    pub fn allows(&self, host: &str, ip: IpAddr) -> bool {
        self.hosts.iter().any(|h| h == &host.to_ascii_lowercase())
            || self.nets.iter().any(|net| net.contains(&ip))
    }
}

/// Addresses an outbound call must not reach unless allow-listed: loopback, private,
/// link-local (cloud metadata), carrier-grade NAT, unspecified, broadcast, multicast, and the
/// IPv6 equivalents: unique-local, link-local, the deprecated site-local (`fec0::/10`), and
/// every form that carries an IPv4 address (mapped `::ffff:a.b.c.d`, translated
/// `::ffff:0:a.b.c.d`, compatible `::a.b.c.d` and NAT64, judged by the address they carry).
/// The tunnels 6to4 (`2002::/16`) and Teredo (`2001::/32`) are refused whole: a relay
/// unwraps them towards an IPv4 address of the sender's choosing, and no webhook needs them.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                // IETF protocol assignments, benchmarking, reserved.
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            // NAT64 (64:ff9b::/96, 64:ff9b:1::/48) and IPv4-compatible (::a.b.c.d) addresses
            // reach the IPv4 address they carry.
            let octets = v6.octets();
            let embedded = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
            let carries_v4 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                || segments[..6] == [0; 6]
                || segments[..6] == [0, 0, 0, 0, 0xffff, 0];
            if carries_v4 && !v6.is_loopback() && !v6.is_unspecified() {
                return is_internal(IpAddr::V4(embedded));
            }
            if segments[..3] == [0x64, 0xff9b, 1] {
                return true;
            }
            let first = segments[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || first == 0x2002
                || (first == 0x2001 && segments[1] == 0)
        }
    }
}

/// The guard: an allow list and the name of the setting that extends it (named in refusals).
#[derive(Debug, Clone)]
pub struct Guard {
    setting: String,
    allow: AllowList,
}

impl Guard {
    pub fn new(setting: &str, entries: &[String]) -> anyhow::Result<Self> {
        Ok(Self {
            setting: setting.into(),
            allow: AllowList::parse(setting, entries)?,
        })
    }

    /// Checks the URL's form only (scheme and host), without resolving: for validating input.
    pub fn check_form(&self, url: &url::Url) -> Result<(), Refusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::Forbidden("only http and https URLs".into()));
        }
        let host = host_of(url)?;
        if let Ok(ip) = host.parse::<IpAddr>() {
            self.check_addrs(&host, &[SocketAddr::new(ip, 0)])?;
        }
        Ok(())
    }

    /// The addresses of `url`'s host that may be called.
    pub async fn check(&self, url: &url::Url) -> Result<Vec<SocketAddr>, Refusal> {
        self.check_form(url)?;
        let host = host_of(url)?;
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| Refusal::Unresolved(format!("cannot resolve {host}: {e}")))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(Refusal::Unresolved(format!("{host} has no address")));
        }
        self.check_addrs(&host, &addrs)?;
        Ok(addrs)
    }

    fn check_addrs(&self, host: &str, addrs: &[SocketAddr]) -> Result<(), Refusal> {
        let refused = addrs
            .iter()
            .any(|a| is_internal(a.ip()) && !self.allow.allows(host, a.ip()));
        if !refused {
            return Ok(());
        }
        // The addresses a name resolves to stay out of the message: it reaches the caller, who
        // could otherwise map the internal network by name.
        Err(Refusal::Forbidden(format!(
            "{host} is or resolves to an internal address; allow it in {}",
            self.setting
        )))
    }

    /// A client that connects `url`'s host only to `addrs` (checked), follows no redirects and
    /// gives up after `timeout`.
    pub fn client(
        &self,
        url: &url::Url,
        addrs: &[SocketAddr],
        timeout: Duration,
    ) -> reqwest::Result<reqwest::Client> {
        let mut builder = client_builder()
            // A proxy from the environment would resolve the name itself, past the check.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout);
        if let Some(host) = url.host_str().filter(|h| h.parse::<IpAddr>().is_err()) {
            builder = builder.resolve_to_addrs(host, addrs);
        }
        builder.build()
    }
}

/// A client builder with the process's TLS settings, read once: the bundled webpki roots and the
/// system's (what reqwest itself would load). reqwest reads the system's roots from disk again on
/// every `build()`, and a client is built per webhook attempt and per `http` job (each pinned to
/// its checked addresses), so that reading was most of notify-svc's CPU while delivering.
pub fn client_builder() -> reqwest::ClientBuilder {
    // HTTP/1.1 only, whichever reqwest features the build unifies (the whole binary gets HTTP/2
    // through object_store, a service built alone does not): the ALPN below must match.
    reqwest::Client::builder()
        .use_preconfigured_tls(tls().clone())
        .http1_only()
}

/// The TLS settings [`client_builder`] hands out (a clone shares the roots).
fn tls() -> &'static rustls::ClientConfig {
    static TLS: OnceLock<rustls::ClientConfig> = OnceLock::new();
    TLS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        // As reqwest does: a system store often holds a few certificates rustls cannot parse
        // (ancient roots without extensions); those are skipped.
        let native = rustls_native_certs::load_native_certs();
        let (added, skipped) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(
            added,
            skipped,
            errors = native.errors.len(),
            "trust roots for outgoing calls loaded"
        );
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        // What reqwest offers for a client built with `http1_only`.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    })
}

fn host_of(url: &url::Url) -> Result<String, Refusal> {
    Ok(url
        .host_str()
        .ok_or_else(|| Refusal::Forbidden("the URL has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_use_the_shared_tls_settings() {
        // reqwest refuses a preconfigured TLS value it does not recognise (another rustls
        // version than its own) only when the client is built.
        let client = client_builder().build();
        assert!(client.is_ok(), "{client:?}");
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:5",
            "64:ff9b:1::1",
            "::10.0.0.1",
            "198.18.0.1",
            "240.0.0.1",
            "192.0.0.8",
            // 6to4 and Teredo tunnels, site-local, IPv4-translated.
            "2002:7f00:1::1",
            "2002:5db8:d822::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "fec0::1",
            "feff::1",
            "::ffff:0:10.0.0.1",
            "::ffff:0:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "2606:4700::1111",
            "8.8.8.8",
            "64:ff9b::808:808",
            "::ffff:0:808:808",
            "2001:db9::1",
            "2001:4860:4860::8888",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn the_allow_list_takes_hosts_ips_and_ranges() {
        let list = AllowList::parse(
            "x.allow",
            &["localhost".into(), "10.0.0.0/8".into(), "::1".into()],
        )
        .unwrap();
        assert!(list.allows("LOCALHOST", "127.0.0.1".parse().unwrap()));
        assert!(list.allows("x", "10.9.8.7".parse().unwrap()));
        assert!(list.allows("x", "::1".parse().unwrap()));
        assert!(!list.allows("x", "127.0.0.1".parse().unwrap()));
        assert!(AllowList::parse("x.allow", &["10.0.0.0/x".into()]).is_err());
        assert!(AllowList::parse("x.allow", &["10.0.0.0/33".into()]).is_err());
        let v6 = AllowList::parse("x.allow", &["fd00::/8".into()]).unwrap();
        assert!(v6.allows("x", "fd12::1".parse().unwrap()));
        assert!(!v6.allows("x", "fe80::1".parse().unwrap()));
    }

    #[tokio::test]
    async fn a_guard_refuses_internal_and_non_http_urls_naming_its_setting() {
        let guard = Guard::new("webhooks.allow", &[]).unwrap();
        let url = url::Url::parse("http://127.0.0.1:9/x").unwrap();
        let err = guard.check(&url).await.unwrap_err();
        assert!(matches!(err, Refusal::Forbidden(_)));
        assert!(err.to_string().contains("webhooks.allow"), "{err}");
        let ftp = url::Url::parse("ftp://example.com/").unwrap();
        assert!(matches!(guard.check_form(&ftp), Err(Refusal::Forbidden(_))));
        let allowed = Guard::new("webhooks.allow", &["127.0.0.1".into()]).unwrap();
        assert_eq!(allowed.check(&url).await.unwrap().len(), 1);
    }
}
