//! Where the hub's own requests may go, in one place.
//!
//! A URL the hub did not configure (a file a supplier lists, a subscriber's callback) can point
//! anywhere: at another host that would then receive a supplier's credentials, or at the hub's
//! own network (loopback, private ranges, cloud metadata). So:
//! - a supplier's credentials go only to its own origin (scheme, host and port of `base_url`;
//!   for OAuth2 also the token URL's), and its credentialed client follows redirects only within
//!   those origins;
//! - anything else is fetched without credentials, only from an origin the configuration allows,
//!   and never from a loopback, link-local, private, unspecified, multicast or metadata address
//!   unless `[egress] allow_networks` names it. The address is checked on the literal in the URL
//!   and, for host names, by the client's resolver as it connects, so a name that resolves to
//!   an allowed address when checked and to a forbidden one later (DNS rebinding) gains nothing.
//!
//! A request the policy stops fails with a [`Refused`] somewhere in its error chain
//! ([`refusal`] finds it), which the clients answer as a refusal, not as a passing fault.

use crate::config::EgressSettings;
use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use url::{Origin, Url};

/// Redirects followed in one chain before giving up.
const MAX_REDIRECTS: usize = 10;

/// A request the egress policy stopped, with why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The egress refusal behind a failed request, if that is why it failed.
pub fn refusal(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r.0.clone());
        }
        source = err.source();
    }
    None
}

/// Why an address is not one the hub reaches unless allowed (`None`: a public address).
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            // An IPv4 address written as IPv6 is the IPv4 address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify_v4(v4);
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address.
                return classify_v4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
            }
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("cloud metadata")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if s[0] & 0xffc0 == 0xfec0 {
                Some("private (site-local)")
            } else {
                None
            }
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if o == [169, 254, 169, 254] || o == [100, 100, 100, 200] {
        Some("cloud metadata")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_private() {
        Some("private")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("private (shared address space)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() || o[0] >= 240 {
        Some("reserved")
    } else {
        None
    }
}

/// Which addresses the hub reaches: public ones, and those in `[egress] allow_networks`.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allowed: Arc<Vec<IpNet>>,
}

impl AddressPolicy {
    pub fn new(settings: &EgressSettings) -> Result<Self, String> {
        let allowed = settings.allow_networks.iter().map(|n| parse_network(n)).collect::<Result<Vec<_>, _>>()?;
        Ok(AddressPolicy { allowed: Arc::new(allowed) })
    }

    /// Refuses an address of the hub's own networks that `allow_networks` does not name.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match classify(ip) {
            Some(class) if !self.allowed.iter().any(|n| n.contains(&ip)) => {
                Err(format!("{ip} is a {class} address, which the hub does not reach unless [egress] allow_networks names it"))
            }
            _ => Ok(()),
        }
    }

    /// Checks the host of `url` when it is an address; names are checked as they resolve.
    pub fn check_url(&self, url: &Url) -> Result<(), String> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)).map_err(|e| format!("{url}: {e}")),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)).map_err(|e| format!("{url}: {e}")),
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err(format!("{url} names no host")),
        }
    }

    /// Resolves `host` and checks every address (for a check ahead of time, such as a new
    /// subscription; requests are checked again as they connect).
    pub async fn check_host(&self, url: &Url) -> Result<(), String> {
        self.check_url(url)?;
        let Some(url::Host::Domain(name)) = url.host() else { return Ok(()) };
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port)).await.map_err(|e| format!("{name} does not resolve: {e}"))?.collect();
        if addrs.is_empty() {
            return Err(format!("{name} does not resolve"));
        }
        for a in addrs {
            self.check_ip(a.ip()).map_err(|e| format!("{name} resolves to {e}"))?;
        }
        Ok(())
    }

    /// An HTTP client whose every connection obeys this policy, following redirects only as
    /// `redirect` says. It uses no proxy: a proxy would resolve names where the policy cannot
    /// see.
    pub fn client(&self, timeout: Duration, redirect: reqwest::redirect::Policy) -> Result<reqwest::Client, String> {
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("siam-hub/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(PolicyResolver(self.clone())))
            .no_proxy()
            .redirect(redirect)
            .build()
            .map_err(|e| e.to_string())
    }
}

fn parse_network(n: &str) -> Result<IpNet, String> {
    let n = n.trim();
    n.parse::<IpNet>().or_else(|_| n.parse::<IpAddr>().map(IpNet::from)).map_err(|_| format!("egress.allow_networks: `{n}` is not a network such as 127.0.0.0/8 or fd00::/8"))
}

/// Resolves names, keeping only the addresses the policy allows; a name with none left fails
/// with a [`Refused`].
struct PolicyResolver(AddressPolicy);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = all
                .into_iter()
                .filter(|a| match policy.check_ip(a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refused.get_or_insert(e);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(why)) => Err(Box::new(Refused(format!("{host} resolves to {why}"))) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// The origin of an `http(s)` URL written in the configuration.
pub fn parse_origin(text: &str) -> Result<Origin, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("`{text}` is not an http(s) URL"));
    }
    Ok(url.origin())
}

/// A redirect policy that follows only to `origins`, and (with `addresses`) only to addresses
/// the policy allows.
pub fn redirect_within(origins: Vec<Origin>, addresses: Option<AddressPolicy>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(Refused(format!("more than {MAX_REDIRECTS} redirects")));
        }
        let next = attempt.url().clone();
        if !origins.contains(&next.origin()) {
            let from = attempt.previous().last().map(|u| u.origin().ascii_serialization()).unwrap_or_default();
            return attempt.error(Refused(format!("a redirect from {from} to {next} leaves the origins the hub may follow it to")));
        }
        if let Some(Err(e)) = addresses.as_ref().map(|a| a.check_url(&next)) {
            return attempt.error(Refused(e));
        }
        attempt.follow()
    })
}

/// Where a supplier-given file URL is, for the supplier's client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileUrl {
    /// On the supplier's own origin: fetched with its credentials.
    Own(Url),
    /// On an origin its `attachment_origins` allows: fetched without credentials.
    Allowed(Url),
}

/// The origins of one supplier instance.
#[derive(Debug, Clone)]
pub struct SupplierOrigins {
    own: Origin,
    /// Where else its credentials may go (the OAuth2 token endpoint).
    credentialed: Vec<Origin>,
    files: Vec<Origin>,
}

impl SupplierOrigins {
    /// `base_url`, the token URL (if any) and `attachment_origins` of a supplier.
    pub fn new(base_url: &str, token_url: Option<&str>, attachment_origins: &[String]) -> Result<Self, String> {
        let own = parse_origin(base_url)?;
        let mut credentialed = vec![own.clone()];
        if let Some(t) = token_url.filter(|t| t.starts_with("http://") || t.starts_with("https://")) {
            credentialed.push(parse_origin(t)?);
        }
        let files = attachment_origins.iter().map(|o| parse_origin(o).map_err(|e| format!("attachment_origins: {e}"))).collect::<Result<_, _>>()?;
        Ok(SupplierOrigins { own, credentialed, files })
    }

    pub fn own(&self) -> &Origin {
        &self.own
    }

    /// The redirect policy of the credentialed client: within the supplier's own origins.
    pub fn credentialed_redirects(&self) -> reqwest::redirect::Policy {
        redirect_within(self.credentialed.clone(), None)
    }

    /// The redirect policy of the client for files elsewhere: within `attachment_origins`.
    pub fn file_redirects(&self, addresses: &AddressPolicy) -> reqwest::redirect::Policy {
        redirect_within(self.files.clone(), Some(addresses.clone()))
    }

    /// Whether `url` is on the supplier's own origin (else why not).
    pub fn check_own(&self, url: &Url) -> Result<(), String> {
        if url.origin() == self.own {
            Ok(())
        } else {
            Err(format!("{url} is on another origin than the supplier's ({}); the hub sends the supplier's credentials nowhere else", self.own.ascii_serialization()))
        }
    }

    /// Sorts a file URL the supplier gave: on its own origin, on an allowed one (whose address
    /// must also be allowed), or refused with why.
    pub fn file_url(&self, url: &Url, addresses: &AddressPolicy) -> Result<FileUrl, String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("file URL {url} is not http(s)"));
        }
        if url.origin() == self.own {
            return Ok(FileUrl::Own(url.clone()));
        }
        if !self.files.contains(&url.origin()) {
            return Err(format!("file URL {url} is on another origin than the supplier's ({}) and not in attachment_origins", self.own.ascii_serialization()));
        }
        addresses.check_url(url).map_err(|e| format!("file URL {e}"))?;
        Ok(FileUrl::Allowed(url.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_of_the_hubs_own_networks_are_classified() {
        for (a, class) in [
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.10.1", "link-local"),
            ("169.254.169.254", "cloud metadata"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("100.64.0.1", "private (shared address space)"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("fc00::1", "private (unique local)"),
            ("fd12:3456::1", "private (unique local)"),
            ("fd00:ec2::254", "cloud metadata"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::a9fe:a9fe", "cloud metadata"),
        ] {
            assert_eq!(classify(ip(a)), Some(class), "{a}");
        }
        for a in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "192.169.0.1", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:8.8.8.8"] {
            assert_eq!(classify(ip(a)), None, "{a}");
        }
    }

    #[test]
    fn allow_networks_lets_named_networks_through_and_nothing_else() {
        let p = AddressPolicy::new(&EgressSettings { allow_networks: vec!["127.0.0.0/8".into(), "fd00::/8".into(), "10.0.0.7".into()] }).unwrap();
        assert!(p.check_ip(ip("127.0.0.1")).is_ok());
        assert!(p.check_ip(ip("::ffff:127.0.0.1")).is_ok(), "a mapped address is its IPv4 address");
        assert!(p.check_ip(ip("fd00:ec2::254")).is_ok());
        assert!(p.check_ip(ip("10.0.0.7")).is_ok());
        let e = p.check_ip(ip("10.0.0.8")).unwrap_err();
        assert!(e.contains("10.0.0.8 is a private address") && e.contains("allow_networks"), "{e}");
        assert!(p.check_ip(ip("::1")).is_err());
        assert!(p.check_ip(ip("169.254.169.254")).is_err());
        let none = AddressPolicy::default();
        assert!(none.check_ip(ip("127.0.0.1")).unwrap_err().contains("loopback"));
        assert!(none.check_ip(ip("93.184.216.34")).is_ok());
        assert!(none.check_url(&Url::parse("http://[::1]:8080/x").unwrap()).is_err());
        assert!(none.check_url(&Url::parse("http://0x7f.1/x").unwrap()).unwrap_err().contains("127.0.0.1"), "numeric spellings are addresses");
        assert!(AddressPolicy::new(&EgressSettings { allow_networks: vec!["localhost".into()] }).unwrap_err().contains("`localhost` is not a network"));
    }

    #[test]
    fn origins_compare_by_scheme_host_and_port_with_default_ports_and_case() {
        let o = SupplierOrigins::new("https://SN.example.com/api/", None, &["https://files.example.com".into()]).unwrap();
        let p = AddressPolicy::default();
        let own = |u: &str| o.file_url(&Url::parse(u).unwrap(), &p);
        assert!(matches!(own("https://sn.example.com:443/x"), Ok(FileUrl::Own(_))), "default port, any case");
        assert!(matches!(own("HTTPS://sn.EXAMPLE.com/other/path?q=1"), Ok(FileUrl::Own(_))));
        assert!(matches!(own("https://files.example.com:443/a"), Ok(FileUrl::Allowed(_))));
        let e = own("https://evil.example/x").unwrap_err();
        assert_eq!(e, "file URL https://evil.example/x is on another origin than the supplier's (https://sn.example.com) and not in attachment_origins");
        assert!(own("http://sn.example.com/x").is_err(), "another scheme is another origin");
        assert!(own("https://sn.example.com:8443/x").is_err(), "another port is another origin");
        assert!(own("https://sn.example.com.evil.example/x").is_err());
        assert!(own("https://files.example.com:8443/a").is_err());
        assert!(own("ftp://sn.example.com/x").is_err());
        assert!(o.check_own(&Url::parse("https://sn.example.com/api/now/attachment/1/file").unwrap()).is_ok());
        assert!(o.check_own(&Url::parse("https://user@evil.example/").unwrap()).is_err());
        // An allowed origin on a forbidden address is still refused.
        let local = SupplierOrigins::new("https://sn.example.com", None, &["http://127.0.0.1:9000".into()]).unwrap();
        assert!(local.file_url(&Url::parse("http://127.0.0.1:9000/f").unwrap(), &p).unwrap_err().contains("loopback"));
        assert!(SupplierOrigins::new("https://sn.example.com", None, &["files.example.com".into()]).is_err());
    }

    #[tokio::test]
    async fn names_resolving_to_forbidden_addresses_are_refused_as_they_connect() {
        let client = AddressPolicy::default().client(Duration::from_secs(2), reqwest::redirect::Policy::none()).unwrap();
        let err = client.get("http://localhost:9/x").send().await.unwrap_err();
        let why = refusal(&err).unwrap_or_else(|| panic!("not a refusal: {err:?}"));
        assert!(why.starts_with("localhost resolves to") && why.contains("loopback"), "{why}");
        let allowed = AddressPolicy::new(&EgressSettings { allow_networks: vec!["127.0.0.0/8".into(), "::1/128".into()] }).unwrap();
        let client = allowed.client(Duration::from_secs(2), reqwest::redirect::Policy::none()).unwrap();
        let err = client.get("http://localhost:9/x").send().await.unwrap_err();
        assert!(refusal(&err).is_none(), "an allowed address is tried (and nobody listens): {err:?}");
    }
}
