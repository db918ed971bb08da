//! Request-target normalisation (the authorization and routing input): never panics; an accepted
//! path is in normal form (normalising again changes nothing), has no dot segment and no encoded
//! slash.
#![no_main]

use http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use mesh_core::proxy::{TargetRules, normalize_path, normalize_target};

fuzz_target!(|data: &[u8]| {
    // `<request-target>\n<host>\n<host>`: each optional.
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let Some(target) = parts.next() else {
        return;
    };
    let mut builder = Request::builder().method(Method::GET).uri(target);
    for host in parts {
        builder = builder.header(http::header::HOST, host);
    }
    let Ok(mut req) = builder.body(()) else {
        return;
    };
    let rules = TargetRules::default();
    if normalize_target(&mut req, &rules).is_ok() {
        let path = req.uri().path();
        assert_eq!(normalize_path(path, &rules).as_deref(), Ok(path));
        assert!(!path.split('/').any(|s| s == "." || s == ".."), "{path}");
        assert!(!path.to_ascii_lowercase().contains("%2f"), "{path}");
    }
});
