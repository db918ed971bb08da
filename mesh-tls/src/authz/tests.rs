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

/// The bypasses found end to end: each request below was answered 200 by the application while a
/// deny rule covered it. Each must now be denied (403) or refused as ambiguous (400), and an
/// allowed request must reach the service with the path that was authorised.
#[tokio::test]
async fn path_and_host_tricks_do_not_bypass_deny_rules() {
    use http::Version;
    use mesh_core::error::{BadRequest, ErrorResponseLayer};

    let policy = AuthzPolicy::new()
        .deny(AuthzRule::anyone().path_prefix("/admin"))
        .deny(AuthzRule::anyone().hosts(["secret.example"]));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let record = seen.clone();
    let app = tower::ServiceBuilder::new()
        .layer(ErrorResponseLayer::new())
        .layer(AuthzLayer::new(policy))
        .service_fn(move |req: Request<()>| {
            record.lock().unwrap().push(req.uri().path().to_owned());
            async { Ok::<_, Infallible>(Response::new(mesh_core::Body::empty())) }
        });
    let status = |req: Request<()>| {
        let app = app.clone();
        async move { app.oneshot(req).await.unwrap().status().as_u16() }
    };
    let get = |uri: &str, host: &str| request(Method::GET, uri, Some(host));

    for path in [
        "/admin/users",
        "/x/../admin/users",
        "//admin/users",
        "/./admin",
        "/%61dmin/users",
    ] {
        assert_eq!(status(get(path, "public.example")).await, 403, "{path}");
    }
    assert_eq!(status(get("/admin%2Fusers", "public.example")).await, 400);
    assert_eq!(status(get("/", "secret.example")).await, 403);
    assert_eq!(status(get("/", "Secret.Example.")).await, 403);

    let mut two_hosts = get("/", "public.example");
    two_hosts
        .headers_mut()
        .append(http::header::HOST, "secret.example".parse().unwrap());
    assert_eq!(status(two_hosts).await, 400);
    assert_eq!(
        status(get("http://public.example/", "secret.example")).await,
        400
    );
    let mut h2 = get("https://public.example/", "secret.example");
    *h2.version_mut() = Version::HTTP_2;
    assert_eq!(status(h2).await, 400);
    let mut h2_alone = request(Method::GET, "https://secret.example./", None);
    *h2_alone.version_mut() = Version::HTTP_2;
    assert_eq!(status(h2_alone).await, 403);

    // None of the above reached the application; an allowed request reaches it normalised.
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(
        status(get("/x/../public//page", "public.example")).await,
        200
    );
    assert_eq!(*seen.lock().unwrap(), ["/public/page"]);

    // Without the edge layer, the refusal is a typed BadRequest.
    let service =
        tower::service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let error = Authz::new(service, AuthzPolicy::new())
        .oneshot(get("/a%5cb", "x"))
        .await
        .unwrap_err();
    assert!(error.is::<BadRequest>());
}
