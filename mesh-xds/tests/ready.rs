//! Readiness and configuration errors, without a control plane.

use std::time::Duration;

use mesh_xds::{XdsClient, XdsConfig, XdsError};
use tokio::net::TcpListener;

/// A control plane that accepts the TCP connection and never says a word: `ready` gives up after
/// its timeout with a typed error naming the cluster, and nothing panics.
#[tokio::test(start_paused = true)]
async fn ready_times_out_with_a_typed_error_when_the_control_plane_never_answers() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = XdsConfig::new(format!("http://{}", silent.local_addr().unwrap()), "node")
        .connect_timeout(Duration::from_secs(1))
        .seed(5);
    let client = XdsClient::connect(config).await.unwrap();
    let _discover = client.discover("orders");

    let timeout = Duration::from_secs(3);
    let err = client.ready("orders", timeout).await.unwrap_err();
    assert_eq!(
        err,
        XdsError::NotReady {
            cluster: "orders".into(),
            timeout
        }
    );
    assert_eq!(
        err.to_string(),
        r#"cluster "orders": no endpoints from the control plane within 3s"#
    );
    assert!(!client.status().borrow().connected);
}

#[tokio::test]
async fn bad_configs_are_refused_naming_the_field() {
    let err = XdsClient::connect(XdsConfig::new("", "node"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            XdsError::Config {
                field: "server",
                ..
            }
        ),
        "{err}"
    );

    let err = XdsClient::connect(XdsConfig::new("http://127.0.0.1:1", ""))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            XdsError::Config {
                field: "node_id",
                ..
            }
        ),
        "{err}"
    );

    let zero = XdsConfig::new("http://127.0.0.1:1", "node").max_endpoints_per_cluster(0);
    let err = XdsClient::connect(zero).await.unwrap_err();
    assert!(matches!(
        err,
        XdsError::Config {
            field: "max_endpoints_per_cluster",
            ..
        }
    ));

    let err = XdsClient::connect(XdsConfig::new("not a uri\n", "node"))
        .await
        .unwrap_err();
    assert!(matches!(err, XdsError::Uri { .. }), "{err}");
}
