//! Service names for addresses (`--services FILE`, TOML). The most specific match wins:
//! `ip:port`, then `ip`, then the longest CIDR prefix, then `:port`.
//!
//! ```toml
//! [services]
//! "10.77.0.12:9001" = "api"
//! "10.77.0.14" = "users"
//! "10.77.1.0/24" = "batch"
//! ":6379" = "redis"
//! ```
//!
//! Without a mapping a server is named `ip:port`. A client is named by its ip, or by the service
//! that listens on that ip when exactly one listening port has been seen there (one process per IP
//! is the usual case: containers, pods). Several services on one IP cannot be told apart as
//! callers: an outbound connection's ephemeral port does not say which process opened it, so
//! their calls are attributed to the IP (see the causality docs).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not valid TOML: {message}")]
    Toml { path: String, message: String },
    #[error("{path}: `{key}` is not an ip:port, ip, CIDR or :port")]
    BadKey { path: String, key: String },
}

#[derive(Clone, Debug, Default)]
pub struct ServiceMap {
    exact: HashMap<SocketAddr, String>,
    by_ip: HashMap<IpAddr, String>,
    nets: Vec<(IpNet, String)>,
    by_port: HashMap<u16, String>,
}

#[derive(serde::Deserialize)]
struct File {
    #[serde(default)]
    services: BTreeMap<String, String>,
}

impl ServiceMap {
    pub fn load(path: &std::path::Path) -> Result<Self, ServicesError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ServicesError::Read {
            path: p.clone(),
            source,
        })?;
        Self::parse(&text, &p)
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, ServicesError> {
        let file: File = toml::from_str(text).map_err(|e| ServicesError::Toml {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        let mut map = ServiceMap::default();
        for (key, name) in file.services {
            let k = key.trim();
            if let Some(port) = k.strip_prefix(':') {
                if let Ok(p) = port.parse() {
                    map.by_port.insert(p, name);
                    continue;
                }
            } else if let Ok(sa) = k.parse::<SocketAddr>() {
                map.exact.insert(sa, name);
                continue;
            } else if let Ok(ip) = k.parse::<IpAddr>() {
                map.by_ip.insert(ip, name);
                continue;
            } else if let Ok(net) = k.parse::<IpNet>() {
                map.nets.push((net, name));
                continue;
            }
            return Err(ServicesError::BadKey {
                path: path.to_string(),
                key,
            });
        }
        // Longest prefix first.
        map.nets
            .sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        Ok(map)
    }

    /// The configured name of a listening address, if any.
    pub fn server_name(&self, addr: SocketAddr) -> Option<&str> {
        self.exact
            .get(&addr)
            .or_else(|| self.by_ip.get(&addr.ip()))
            .or_else(|| self.net_name(addr.ip()))
            .or_else(|| self.by_port.get(&addr.port()))
            .map(String::as_str)
    }

    /// The configured name of a caller's address (its port is ephemeral, so only ip and CIDR).
    pub fn client_name(&self, ip: IpAddr) -> Option<&str> {
        self.by_ip
            .get(&ip)
            .or_else(|| self.net_name(ip))
            .map(String::as_str)
    }

    fn net_name(&self, ip: IpAddr) -> Option<&String> {
        self.nets
            .iter()
            .find(|(n, _)| n.contains(&ip))
            .map(|(_, name)| name)
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
            && self.by_ip.is_empty()
            && self.nets.is_empty()
            && self.by_port.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_match_wins() {
        let m = ServiceMap::parse(
            r#"[services]
"10.77.0.12:9001" = "api"
"10.77.0.12" = "api-host"
"10.77.0.0/16" = "dc"
"10.77.1.0/24" = "batch"
":6379" = "redis"
"[fd00::1]:80" = "v6-web"
"#,
            "t.toml",
        )
        .unwrap();
        let n = |s: &str| m.server_name(s.parse().unwrap());
        assert_eq!(n("10.77.0.12:9001"), Some("api"));
        assert_eq!(n("10.77.0.12:9002"), Some("api-host"));
        assert_eq!(n("10.77.1.5:80"), Some("batch"));
        assert_eq!(n("10.77.2.5:80"), Some("dc"));
        assert_eq!(n("10.9.9.9:6379"), Some("redis"));
        assert_eq!(n("[fd00::1]:80"), Some("v6-web"));
        assert_eq!(n("10.9.9.9:80"), None);
        assert_eq!(m.client_name("10.77.1.9".parse().unwrap()), Some("batch"));
    }

    #[test]
    fn bad_keys_are_reported() {
        let e = ServiceMap::parse("[services]\n\"nonsense\" = \"x\"\n", "s.toml").unwrap_err();
        assert!(e.to_string().contains("nonsense"));
    }
}
