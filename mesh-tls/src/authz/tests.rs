use std::convert::Infallible;

use http::{Method, Request, Response};
use mesh_core::error::Unauthorized;
use tokio_test::{assert_pending, assert_ready};
use tower::ServiceExt;
use tower_test::mock;

use super::*;
use crate::{Authorizer, SpiffeId};

fn id(s: &str) -> SpiffeId {
    s.parse().unwrap()
}

fn request(method: Method, uri: &str, host: Option<&str>) -> Request<()> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(host) = host {
        builder = builder.header(http::header::HOST, host);
    }
    builder.body(()).unwrap()
}

fn shop() -> Authorizer {
    Authorizer::path_prefix("prod.example".parse().unwrap(), "/ns/shop")
}

#[test]
fn rule_table() {
    let web = id("spiffe://prod.example/ns/shop/sa/web");
    let ops = id("spiffe://prod.example/ns/ops/sa/admin");
    let policy = AuthzPolicy::new()
        .deny(AuthzRule::any_authenticated().path_prefix("/internal/"))
        .deny(
            AuthzRule::anyone()
                .methods([Method::DELETE])
                .hosts(["Orders.Example"]),
        )
        .allow(AuthzRule::peers(shop()).methods([Method::GET, Method::POST]))
        .allow(AuthzRule::peers(Authorizer::ids([ops.clone()])))
        .allow(AuthzRule::unauthenticated().path_prefix("/healthz"));
    use Decision::*;
    /// Peer, method, URI, `Host` header, expected decision.
    type Case<'a> = (
        Option<&'a SpiffeId>,
        Method,
        &'a str,
        Option<&'a str>,
        Decision,
    );
    let table: &[Case<'_>] = &[
        (
            Some(&web),
            Method::GET,
            "/orders/1",
            None,
            Allowed { rule: 0 },
        ),
        (Some(&web), Method::PUT, "/orders/1", None, DeniedByDefault),
        (
            Some(&web),
            Method::GET,
            "/internal",
            None,
            Denied { rule: 0 },
        ),
        (
            Some(&web),
            Method::GET,
            "/internal/x",
            None,
            Denied { rule: 0 },
        ),
        (
            Some(&web),
            Method::GET,
            "/internalx",
            None,
            Allowed { rule: 0 },
        ),
        (
            Some(&ops),
            Method::PUT,
            "/orders/1",
            None,
            Allowed { rule: 1 },
        ),
        (
            Some(&ops),
            Method::DELETE,
            "/orders/1",
            Some("orders.example:8443"),
            Denied { rule: 1 },
        ),
        (
            Some(&ops),
            Method::DELETE,
            "/orders/1",
            Some("billing.example"),
            Allowed { rule: 1 },
        ),
        (
            Some(&ops),
            Method::DELETE,
            "http://ORDERS.example/x",
            None,
            Denied { rule: 1 },
        ),
        (None, Method::GET, "/healthz", None, Allowed { rule: 2 }),
        (
            None,
            Method::GET,
            "/healthz/live",
            None,
            Allowed { rule: 2 },
        ),
        (None, Method::GET, "/orders/1", None, DeniedByDefault),
        (None, Method::GET, "/internal/x", None, DeniedByDefault),
        (
            None,
            Method::DELETE,
            "/healthz",
            Some("orders.example"),
            Denied { rule: 1 },
        ),
    ];
    for (peer, method, uri, host, expected) in table {
        let req = request(method.clone(), uri, *host);
        assert_eq!(
            policy.decide(*peer, &req),
            *expected,
            "{peer:?} {method} {uri} {host:?}"
        );
    }
}

#[test]
fn default_is_allow_without_allow_rules() {
    let policy = AuthzPolicy::new().deny(AuthzRule::unauthenticated());
    let req = request(Method::GET, "/", None);
    assert_eq!(policy.decide(None, &req), Decision::Denied { rule: 0 });
    let web = id("spiffe://td/web");
    assert_eq!(policy.decide(Some(&web), &req), Decision::AllowedByDefault);
    assert_eq!(
        AuthzPolicy::new().decide(None, &req),
        Decision::AllowedByDefault
    );
}

#[tokio::test]
async fn denied_requests_fail_with_unauthorized_and_never_reach_the_service() {
    let (service, mut handle) = mock::pair::<Request<()>, Response<()>>();
    let policy = AuthzPolicy::new().allow(AuthzRule::peers(shop()));
    let mut authz = mock::Spawn::new(Authz::new(service, policy));

    handle.allow(1);
    assert_ready!(authz.poll_ready()).unwrap();
    let mut req = request(Method::GET, "/", None);
    req.extensions_mut().insert(mesh_core::PeerIdentity::new(
        id("spiffe://prod.example/ns/other").to_identity(),
    ));
    let error = authz.call(req).await.unwrap_err();
    let unauthorized = error.downcast_ref::<Unauthorized>().unwrap();
    let denied = std::error::Error::source(unauthorized)
        .and_then(|e| e.downcast_ref::<AuthzDenied>())
        .unwrap();
    assert_eq!(denied.decision(), Decision::DeniedByDefault);
    assert_eq!(denied.peer().unwrap().path(), "/ns/other");
    assert_pending!(handle.poll_request());

    // An allowed one goes through, with its request untouched.
    assert_ready!(authz.poll_ready()).unwrap();
    let mut req = request(Method::GET, "/x", None);
    req.extensions_mut()
        .insert(id("spiffe://prod.example/ns/shop/a"));
    let call = authz.call(req);
    let (seen, respond) = handle.next_request().await.unwrap();
    assert_eq!(seen.uri().path(), "/x");
    respond.send_response(Response::new(()));
    call.await.unwrap();
}

#[tokio::test]
async fn dry_run_lets_denials_through() {
    let policy = AuthzPolicy::new().deny(AuthzRule::anyone()).dry_run(true);
    let service =
        tower::service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let response = Authz::new(service, policy)
        .oneshot(request(Method::GET, "/", None))
        .await;
    assert!(response.is_ok());
}
