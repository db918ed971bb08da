//! The `mesh-gateway` TOML configuration: [`load`] reads and checks a file and returns a
//! [`Gateway`] of ready-to-use values, or a [`ConfigError`] naming the key and the reason.
//!
//! Upstream `[services.NAME]` tables are the sidecar's (see [`ServiceConfig`]) without
//! `authorities`: the gateway routes by `[[routes]]`. `[identity]` and `[locality]` are the
//! sidecar's too, and so are the top-level `service_name` and the `[otlp]` table
//! ([`crate::telemetry`]). Relative file paths are taken from the configuration file's directory.
//!
//! ```
//! let text = r#"
//!     [listeners]
//!     public = "127.0.0.1:8080"
//!     admin = "127.0.0.1:9901"
//!     [identity]
//!     cert = "/nonexistent/cert.pem"
//!     key = "/nonexistent/key.pem"
//!     bundles = { "prod.example" = "/nonexistent/bundle.pem" }
//!     [[routes]]
//!     host = "api.example.com"
//!     path_prefix = "/orders"
//!     service = "orders"
//!     add_headers = { "x-gateway" = "edge-1" }
//!     remove_headers = ["cookie"]
//!     [rate_limit]
//!     per_second = 100.0
//!     burst = 200
//!     key = "header:x-api-key"
//! "#;
//! let err = mesh_examples::gateway_config::parse(text, std::path::Path::new("/")).unwrap_err();
//! assert_eq!(err.key(), Some("identity.cert"));
//! ```
//!
//! [`ServiceConfig`]: crate::config::ServiceConfig

mod model;
mod resolve;

use std::path::Path;

pub use crate::config::ConfigError;
pub use model::{GatewayConfig, GatewayListeners, RateLimitSettings, RouteConfig, ServerTlsConfig};
pub use resolve::{Gateway, RateKey, RateLimit, Route, ServerTls};

/// Reads `path` and checks it; relative paths inside are taken from its directory.
pub fn load(path: &Path) -> Result<Gateway, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    parse(&text, base)
}

/// Parses and checks `text`; relative paths inside are taken from `base`.
pub fn parse(text: &str, base: &Path) -> Result<Gateway, ConfigError> {
    let raw: GatewayConfig =
        toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
    resolve::resolve(raw, base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(extra: &str) -> String {
        let dir = env!("CARGO_MANIFEST_DIR");
        format!(
            "[listeners]\npublic = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             [identity]\ncert = \"{dir}/Cargo.toml\"\nkey = \"{dir}/Cargo.toml\"\n\
             bundles = {{ \"t.example\" = \"{dir}/Cargo.toml\" }}\n\
             [services.orders]\ndiscovery = {{ kind = \"static\", endpoints = [{{ address = \"127.0.0.1:1\" }}] }}\n{extra}"
        )
    }

    fn err_key(extra: &str) -> String {
        parse(&base(extra), Path::new("/"))
            .unwrap_err()
            .key()
            .unwrap_or("<none>")
            .to_owned()
    }

    #[test]
    fn a_valid_file_resolves_routes_and_limit() {
        let text = base(
            "[[routes]]\nhost = \"API.example\"\npath_prefix = \"/orders/\"\nservice = \"orders\"\n\
             add_headers = { \"x-a\" = \"1\" }\nremove_headers = [\"cookie\"]\n\
             [rate_limit]\nper_second = 2.0\nkey = \"header:x-api-key\"\n",
        );
        let gateway = parse(&text, Path::new("/")).unwrap();
        let route = &gateway.routes[0];
        assert_eq!(route.host.as_deref(), Some("api.example"));
        assert_eq!(route.path_prefix, "/orders");
        assert_eq!(route.service, 0);
        assert_eq!(route.add_headers[0].0, "x-a");
        assert_eq!(route.remove_headers[0], "cookie");
        let limit = gateway.rate_limit.unwrap();
        assert_eq!(
            limit.key,
            RateKey::Header(http::HeaderName::from_static("x-api-key"))
        );
        assert!(gateway.services[0].authorities.is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        let route = |body: &str| format!("[[routes]]\n{body}\n");
        assert_eq!(
            err_key(&route("path_prefix = \"/\"\nservice = \"nope\"")),
            "routes[0].service"
        );
        assert_eq!(
            err_key(&route("path_prefix = \"x\"\nservice = \"orders\"")),
            "routes[0].path_prefix"
        );
        assert_eq!(
            err_key(&route(
                "path_prefix = \"/\"\nservice = \"orders\"\nadd_headers = { \"bad name\" = \"v\" }"
            )),
            "routes[0].add_headers.bad name"
        );
        assert_eq!(
            err_key("[rate_limit]\nper_second = 0.0\n"),
            "rate_limit.per_second"
        );
        assert_eq!(
            err_key("[rate_limit]\nper_second = 1.0\nkey = \"cookie\"\n"),
            "rate_limit.key"
        );
        assert_eq!(
            err_key("[tls]\ncert = \"/nonexistent.pem\"\nkey = \"/nonexistent.pem\"\n"),
            "tls.cert"
        );
    }

    #[test]
    fn unknown_keys_and_authorities_are_refused() {
        let err = parse(&base("[[routes]]\npath_prefx = \"/\"\n"), Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("path_prefx"), "{err}");
        let text = base("").replace(
            "[services.orders]\n",
            "[services.orders]\nauthorities = [\"orders\"]\n",
        );
        let err = parse(&text, Path::new("/")).unwrap_err();
        assert_eq!(err.key(), Some("services.orders.authorities"));
    }

    #[test]
    fn the_gateway_refuses_the_inbound_recheck_option() {
        let text = base("").replacen(
            "[services.orders]",
            "recheck_connections_on_bundle_change = true\n[services.orders]",
            1,
        );
        let key = parse(&text, Path::new("/"))
            .unwrap_err()
            .key()
            .map(str::to_owned);
        assert_eq!(
            key.as_deref(),
            Some("identity.recheck_connections_on_bundle_change")
        );
    }
}
