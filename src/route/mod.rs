//! `http.route`: a path's template, so that requests for the same endpoint aggregate. Three
//! sources, the first that answers wins:
//!
//! 1. the user's templates (`--routes FILE`, OpenAPI style: `/stock/{sku}`);
//! 2. rules on each segment's shape ([`shape`]: numbers, UUIDs, hex, dates, `sku-7`, …);
//! 3. counts: where one position of a path, under the same service, method and route prefix,
//!    has taken more than [`RouteConfig::values_per_position`] distinct literal values, it is a
//!    parameter (`{param}`) from then on — names of products, cities, files that no shape rule
//!    could call identifiers.
//!
//! And a cap: a service has at most [`RouteConfig::max_per_service`] routes; paths past it are
//! reported as `/{rest}`, so that a scan of 10⁵ random paths cannot flood a tracing backend with
//! as many operation names (or this table's memory).
//!
//! The routes depend only on the paths seen before, in capture order: the same capture gives the
//! same routes on every run. A position's first values are reported literally until it turns
//! out to be a parameter; the report, which sees the whole capture, can tell by then.

pub mod shape;
pub mod templates;

use crate::keyhash::{KeyMap, KeySet};

pub use shape::template;
pub use templates::Templates;

/// Route for paths past a service's route cap.
pub const OVERFLOW: &str = "/{rest}";
/// A position that took too many distinct values.
const PARAM: &str = "{param}";
/// Segments looked at; the rest of a longer path is `{rest}` (no API nests this deep).
const MAX_DEPTH: usize = 32;

#[derive(Clone, Debug)]
pub struct RouteConfig {
    /// Distinct literal values a path position may take before it is a parameter.
    pub values_per_position: usize,
    /// Routes per service; paths past it are reported as [`OVERFLOW`].
    pub max_per_service: usize,
    /// Services tracked; past it, new services get rule-only routes.
    pub max_services: usize,
    pub templates: Templates,
}

impl Default for RouteConfig {
    fn default() -> Self {
        RouteConfig {
            values_per_position: 20,
            max_per_service: 1000,
            max_services: 10_000,
            templates: Templates::default(),
        }
    }
}

/// Route prefixes (positions) tracked per service, per route allowed: random paths branch at
/// every level, and past this every new position is a parameter.
const POSITIONS_PER_ROUTE: usize = 4;

/// The routes seen so far, per service (see the module's doc). Everything is kept as 64-bit
/// hashes, so memory is bounded by counts alone: per service at most `max_per_service` routes
/// and `POSITIONS_PER_ROUTE × max_per_service` positions of at most `values_per_position`
/// values each, for at most `max_services` services.
#[derive(Debug, Default)]
pub struct Routes {
    config: RouteConfig,
    services: KeyMap<u64, ServiceRoutes>,
}

#[derive(Debug, Default)]
struct ServiceRoutes {
    routes: KeySet<u64>,
    /// Per (method, route so far): the literal values seen next, or None once a parameter.
    positions: KeyMap<u64, Option<KeySet<u64>>>,
}

fn hash<const N: usize>(parts: [&str; N]) -> u64 {
    // Each part followed by a zero byte: ("ab", "c") and ("a", "bc") differ.
    let with_ends: [[&[u8]; 2]; N] = parts.map(|p| [p.as_bytes(), &[0]]);
    crate::ids::hash64_of_parts(&[b"tapspan.route"], with_ends.as_flattened())
}

impl Routes {
    pub fn new(config: RouteConfig) -> Self {
        Routes {
            config,
            services: KeyMap::default(),
        }
    }

    /// The route of `path` (no query) in a request for `method` to `service`.
    pub fn route(&mut self, service: &str, method: &str, path: &str) -> String {
        if let Some(t) = self.config.templates.matching(path) {
            return t.to_string();
        }
        if !path.starts_with('/') {
            return template(path);
        }
        let service_key = hash([service]);
        if !self.services.contains_key(&service_key)
            && self.services.len() >= self.config.max_services
        {
            return template(path);
        }
        let config = &self.config;
        let max_positions = POSITIONS_PER_ROUTE * config.max_per_service;
        let svc = self.services.entry(service_key).or_default();
        let mut route = String::with_capacity(path.len());
        for (depth, seg) in path.split('/').skip(1).enumerate() {
            route.push('/');
            if depth == MAX_DEPTH {
                route.push_str("{rest}");
                break;
            }
            if shape::is_identifier(seg) {
                route.push_str("{id}");
                continue;
            }
            let position = hash([method, &route]);
            if !svc.positions.contains_key(&position) && svc.positions.len() >= max_positions {
                route.push_str(PARAM);
                continue;
            }
            let values = svc
                .positions
                .entry(position)
                .or_insert_with(|| Some(KeySet::default()));
            let value = hash([seg]);
            let literal = match values {
                Some(seen) if seen.contains(&value) => true,
                Some(seen) if seen.len() < config.values_per_position => {
                    seen.insert(value);
                    true
                }
                Some(_) => {
                    *values = None; // from now on a parameter
                    false
                }
                None => false,
            };
            route.push_str(if literal { seg } else { PARAM });
        }
        let key = hash([&route]);
        if svc.routes.contains(&key) {
            return route;
        }
        if svc.routes.len() >= config.max_per_service {
            return OVERFLOW.to_string();
        }
        svc.routes.insert(key);
        route
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_with_many_values_becomes_a_parameter() {
        let mut routes = Routes::new(RouteConfig {
            values_per_position: 3,
            ..RouteConfig::default()
        });
        let got: Vec<String> = ["apple", "pear", "plum", "fig", "apple", "kiwi"]
            .iter()
            .map(|f| routes.route("shop:80", "GET", &format!("/fruit/{f}/price")))
            .collect();
        assert_eq!(
            got,
            [
                "/fruit/apple/price",
                "/fruit/pear/price",
                "/fruit/plum/price",
                "/fruit/{param}/price",
                "/fruit/{param}/price",
                "/fruit/{param}/price",
            ]
        );
        // Counted per service and method.
        assert_eq!(
            routes.route("other:80", "GET", "/fruit/fig/price"),
            "/fruit/fig/price"
        );
        assert_eq!(
            routes.route("shop:80", "PUT", "/fruit/fig/price"),
            "/fruit/fig/price"
        );
    }

    #[test]
    fn a_service_past_its_cap_gets_one_overflow_route() {
        let mut routes = Routes::new(RouteConfig {
            values_per_position: 1_000_000,
            max_per_service: 10,
            ..RouteConfig::default()
        });
        let distinct: std::collections::HashSet<String> = (0..1000)
            .map(|i| routes.route("s:80", "GET", &format!("/page{}x", i)))
            .collect();
        assert_eq!(distinct.len(), 11);
        assert!(distinct.contains(OVERFLOW));
        // A route seen before the cap keeps its name.
        assert_eq!(routes.route("s:80", "GET", "/page3x"), "/page3x");
    }

    #[test]
    fn user_templates_win() {
        let mut routes = Routes::new(RouteConfig {
            templates: Templates::parse("/stock/{sku}\n/fruit/{name}/price\n").unwrap(),
            ..RouteConfig::default()
        });
        assert_eq!(routes.route("s:80", "GET", "/stock/sku-7"), "/stock/{sku}");
        assert_eq!(
            routes.route("s:80", "GET", "/fruit/fig/price"),
            "/fruit/{name}/price"
        );
        assert_eq!(routes.route("s:80", "GET", "/users/7"), "/users/{id}");
    }

    #[test]
    fn deep_paths_end_in_rest() {
        let mut routes = Routes::default();
        let deep = "/a".repeat(100);
        let r = routes.route("s:80", "GET", &deep);
        assert!(r.ends_with("/{rest}"), "{r}");
        assert_eq!(r.matches('/').count(), MAX_DEPTH + 1);
    }
}
