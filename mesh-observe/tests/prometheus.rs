//! The Prometheus endpoint (feature `prometheus`): request metrics recorded by the trace layers,
//! scraped, parsed back from the text format and checked.
#![cfg(feature = "prometheus")]

use std::collections::BTreeMap;
use std::convert::Infallible;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use mesh_observe::prometheus::prometheus_endpoint;
use mesh_observe::{RouteTemplate, ServerTraceLayer, TraceConfig};
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use tower::{Layer, Service, ServiceExt};

/// One sample of the text exposition format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the sample lines of the text format (`name{k="v",...} value`), skipping comments.
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (key, tail) = rest.split_once("=\"").expect("label value");
            let end = tail.find('"').expect("closing quote");
            map.insert(key.to_owned(), tail[..end].to_owned());
            rest = tail[end + 1..].trim_start_matches(',');
        }
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().expect("numeric value"),
        };
        samples.push(Sample {
            name: name.to_owned(),
            labels: map,
            value,
        });
    }
    samples
}

#[tokio::test]
async fn request_metrics_scrape_and_parse_back() {
    let (reader, metrics) = prometheus_endpoint().unwrap();
    let provider = SdkMeterProvider::builder().with_reader(reader).build();
    let config = TraceConfig::new().meter(provider.meter("mesh-observe"));
    let handler = tower::service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    let mut service = ServerTraceLayer::new(config).layer(handler);
    for traceparent in [
        "00-bad",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ] {
        let mut req = Request::get("/orders/42")
            .header("traceparent", traceparent)
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(RouteTemplate::from_static("/orders/{id}"));
        let res = service.ready().await.unwrap().call(req).await.unwrap();
        res.into_body().collect().await.unwrap();
    }

    let res = metrics.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(
        text.contains("# TYPE http_server_request_duration_seconds histogram"),
        "{text}"
    );
    let samples = parse(&text);

    let ours = |name: &str| -> Vec<&Sample> {
        samples
            .iter()
            .filter(|s| {
                s.name == name
                    && s.labels.get("http_route").map(String::as_str) == Some("/orders/{id}")
            })
            .collect()
    };
    let count = ours("http_server_request_duration_seconds_count");
    assert_eq!(count.len(), 1, "one series: {text}");
    assert_eq!(count[0].value, 2.0);
    assert_eq!(count[0].labels["http_request_method"], "GET");
    assert_eq!(count[0].labels["http_response_status_code"], "200");
    assert!(
        !count[0].labels.contains_key("url_path"),
        "no raw path label"
    );

    let mut buckets: Vec<(f64, f64)> = ours("http_server_request_duration_seconds_bucket")
        .iter()
        .map(|s| {
            let le = match s.labels["le"].as_str() {
                "+Inf" => f64::INFINITY,
                le => le.parse().unwrap(),
            };
            (le, s.value)
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let bounds: Vec<f64> = buckets
        .iter()
        .map(|b| b.0)
        .filter(|b| b.is_finite())
        .collect();
    assert_eq!(bounds, mesh_observe::metrics::DURATION_BOUNDARIES);
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "cumulative buckets"
    );
    assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, 2.0));

    let mut rejected: Vec<_> = samples
        .iter()
        .filter(|s| s.name == "mesh_trace_context_rejected_total")
        .collect();
    // Every rejection series is scraped from the start, at 0; one counted a request.
    assert_eq!(rejected.len(), 13, "{text}");
    rejected.retain(|s| s.value > 0.0);
    assert_eq!(rejected.len(), 1, "{text}");
    assert_eq!(rejected[0].labels["header"], "traceparent");
    assert_eq!(rejected[0].labels["reason"], "malformed");
    assert_eq!(rejected[0].value, 1.0);

    let active: Vec<_> = samples
        .iter()
        .filter(|s| s.name == "http_server_active_requests")
        .collect();
    assert_eq!(active.iter().map(|s| s.value).sum::<f64>(), 0.0, "{text}");
}

#[tokio::test]
async fn only_get_and_head_are_served() {
    let (_reader, metrics) = prometheus_endpoint().unwrap();
    let post = Request::builder().method(Method::POST).body(()).unwrap();
    let res = metrics.clone().oneshot(post).await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, HEAD");
    let head = Request::builder().method(Method::HEAD).body(()).unwrap();
    let res = metrics.clone().oneshot(head).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );
}
