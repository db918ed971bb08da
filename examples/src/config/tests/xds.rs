//! `[xds]` and `discovery = { xds = "CLUSTER" }`.

use super::{check, invalid};
use crate::config::{ConfigError, Discovery};

const SERVICE: &str = "[services.orders]\nauthorities = [\"orders\"]\n";

#[test]
fn the_short_and_the_tagged_form_name_the_cluster() {
    for discovery in [
        r#"discovery = { xds = "outbound|8080||orders.default.svc.cluster.local" }"#,
        r#"discovery = { kind = "xds", cluster = "outbound|8080||orders.default.svc.cluster.local" }"#,
    ] {
        let config = check(&format!(
            "[xds]\nserver = \"127.0.0.1:18000\"\nnode_id = \"n1\"\nprotocol = \"delta\"\n\n{SERVICE}{discovery}\n"
        ))
        .unwrap();
        let Discovery::Xds { cluster, .. } = &config.services[0].discovery else {
            panic!("not xDS: {:?}", config.services[0].discovery);
        };
        assert_eq!(cluster, "outbound|8080||orders.default.svc.cluster.local");
        let xds = config.xds.unwrap();
        assert_eq!(xds.config.server, "http://127.0.0.1:18000");
        assert_eq!(xds.config.protocol, mesh_xds::Protocol::Delta);
        assert_eq!(
            xds.initial_fetch_timeout,
            std::time::Duration::from_secs(15)
        );
    }
}

#[test]
fn xds_discovery_without_a_control_plane_or_with_a_bad_one_is_refused() {
    let (key, reason) = invalid(&format!("{SERVICE}discovery = {{ xds = \"orders\" }}\n"));
    assert_eq!(key, "services.orders.discovery");
    assert!(reason.contains("[xds]"), "{reason}");

    let (key, _) = invalid("[xds]\nserver = \"not an address\"\nnode_id = \"n1\"\n");
    assert_eq!(key, "xds.server");
    let (key, _) = invalid("[xds]\nserver = \"127.0.0.1:18000\"\nnode_id = \"\"\n");
    assert_eq!(key, "xds.node_id");
    let (key, _) = invalid(&format!(
        "[xds]\nserver = \"127.0.0.1:1\"\nnode_id = \"n\"\n\n{SERVICE}discovery = {{ xds = \"\" }}\n"
    ));
    assert_eq!(key, "services.orders.discovery.xds");

    let extra = format!(
        "[xds]\nserver = \"127.0.0.1:1\"\nnode_id = \"n\"\n\n{SERVICE}discovery = {{ xds = \"a\", kind = \"dns\" }}\n"
    );
    match check(&extra) {
        Err(ConfigError::Syntax(message)) => assert!(message.contains("short form"), "{message}"),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}
