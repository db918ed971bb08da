use http::{Method, Request, Version};

use super::*;

fn rules() -> TargetRules {
    TargetRules::default()
}

fn get(uri: &str) -> http::request::Builder {
    Request::builder().method(Method::GET).uri(uri)
}

#[test]
fn the_issue_path_bypasses_become_the_path_they_reach() {
    for (raw, normal) in [
        ("/x/../admin/users", "/admin/users"),
        ("//admin/users", "/admin/users"),
        ("/./admin", "/admin"),
        ("/%61dmin/users", "/admin/users"),
    ] {
        let mut req = get(raw).header("host", "a").body(()).unwrap();
        normalize_target(&mut req, &rules()).unwrap();
        assert_eq!(req.uri().path(), normal, "{raw}");
    }
}

#[test]
fn the_query_is_kept_as_it_was() {
    let mut req = get("/a/../b?x=/../%2F&y")
        .header("host", "a")
        .body(())
        .unwrap();
    normalize_target(&mut req, &rules()).unwrap();
    assert_eq!(req.uri(), "/b?x=/../%2F&y");
}

#[test]
fn an_absolute_form_uri_keeps_its_authority_and_gets_its_path_normalised() {
    let mut req = get("http://shop.example/a//b")
        .header("host", "shop.example")
        .body(())
        .unwrap();
    normalize_target(&mut req, &rules()).unwrap();
    assert_eq!(req.uri(), "http://shop.example/a/b");
}

#[test]
fn two_host_headers_are_refused() {
    let mut req = get("/")
        .header("host", "public.example")
        .header("host", "secret.example")
        .body(())
        .unwrap();
    assert_eq!(
        normalize_target(&mut req, &rules()),
        Err(TargetError::DuplicateHost)
    );
}

#[test]
fn a_host_differing_from_the_absolute_form_authority_is_refused() {
    let mut req = get("http://public.example/admin")
        .header("host", "secret.example")
        .body(())
        .unwrap();
    assert_eq!(
        normalize_target(&mut req, &rules()),
        Err(TargetError::HostMismatch)
    );
    // Another port is another origin; the scheme's default port is the same one.
    let mut req = get("http://a.example:8080/")
        .header("host", "a.example")
        .body(())
        .unwrap();
    assert_eq!(
        normalize_target(&mut req, &rules()),
        Err(TargetError::HostMismatch)
    );
    let mut req = get("http://a.example:80/")
        .header("host", "A.Example.")
        .body(())
        .unwrap();
    assert_eq!(normalize_target(&mut req, &rules()), Ok(()));
}

#[test]
fn an_http2_authority_differing_from_host_is_refused() {
    let mut req = get("https://public.example/")
        .version(Version::HTTP_2)
        .header("host", "secret.example")
        .body(())
        .unwrap();
    assert_eq!(
        normalize_target(&mut req, &rules()),
        Err(TargetError::HostMismatch)
    );
    let mut alone = get("https://public.example/")
        .version(Version::HTTP_2)
        .body(())
        .unwrap();
    assert_eq!(normalize_target(&mut alone, &rules()), Ok(()));
}

#[test]
fn hosts_that_are_not_authorities_or_carry_userinfo_are_refused() {
    for host in ["a b", "user@secret.example", ""] {
        let mut req = get("/").header("host", host).body(()).unwrap();
        assert_eq!(
            normalize_target(&mut req, &rules()),
            Err(TargetError::InvalidHost),
            "{host:?}"
        );
    }
    let mut req = get("http://user@secret.example/").body(()).unwrap();
    assert_eq!(
        normalize_target(&mut req, &rules()),
        Err(TargetError::InvalidHost)
    );
}

#[test]
fn an_http11_request_needs_a_host_and_http10_does_not() {
    let mut req = get("/").body(()).unwrap();
    assert_eq!(
        normalize_target(&mut req, &rules()),
        Err(TargetError::MissingHost)
    );
    let mut old = get("/").version(Version::HTTP_10).body(()).unwrap();
    assert_eq!(normalize_target(&mut old, &rules()), Ok(()));
    let lenient = rules().require_host(false);
    assert_eq!(normalize_target(&mut req, &lenient), Ok(()));
}

#[test]
fn connect_is_refused_unless_allowed() {
    let connect = || {
        Request::builder()
            .method(Method::CONNECT)
            .uri("secret.example:443")
            .header("host", "secret.example:443")
            .body(())
            .unwrap()
    };
    let refused = normalize_target(&mut connect(), &rules());
    assert_eq!(refused, Err(TargetError::ConnectNotAllowed));
    let failure = refused.unwrap_err().into_failure();
    assert!(failure.is::<crate::error::MethodNotAllowed>());
    let mut req = connect();
    assert_eq!(
        normalize_target(&mut req, &rules().allow_connect(true)),
        Ok(())
    );
    assert_eq!(req.uri(), "secret.example:443");
}

#[test]
fn options_star_is_left_alone() {
    let mut req = Request::builder()
        .method(Method::OPTIONS)
        .uri("*")
        .header("host", "a")
        .body(())
        .unwrap();
    assert_eq!(normalize_target(&mut req, &rules()), Ok(()));
    let mut get_star = get("*").header("host", "a").body(()).unwrap();
    assert_eq!(
        normalize_target(&mut get_star, &rules()),
        Err(TargetError::NotOriginForm)
    );
}

#[test]
fn a_refusal_leaves_the_request_unchanged_and_maps_to_bad_request() {
    let mut req = get("/a/../b%2f").header("host", "a").body(()).unwrap();
    let refused = normalize_target(&mut req, &rules()).unwrap_err();
    assert_eq!(req.uri(), "/a/../b%2f");
    let failure = refused.into_failure();
    assert!(failure.is::<crate::error::BadRequest>());
    assert_eq!(
        crate::classify::ErrorKind::of_dyn(&*failure),
        crate::classify::ErrorKind::BadRequest
    );
}

#[test]
fn request_host_reads_the_uri_then_host() {
    let req = get("http://Uri.Example:81/")
        .header("host", "other")
        .body(())
        .unwrap();
    assert_eq!(request_host(&req), Some("Uri.Example"));
    let req = get("/").header("host", "[::1]:8080").body(()).unwrap();
    assert_eq!(request_host(&req), Some("[::1]"));
    let req = get("/").header("host", "secret.example.").body(()).unwrap();
    assert_eq!(
        canonical_host(request_host(&req).unwrap()),
        "secret.example"
    );
}
