//! `observe_response`: the completion is reported exactly once, at the right moment, for every way a
//! body can end.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use mesh_core::classify::{
    Completion, ErrorKind, FailureClass, GrpcCode, MakeClassifier, MeshClassifier, OnCompletion,
    Outcome, observe_response,
};

/// A body that yields scripted frames (and optionally an error), without claiming its end early.
struct ScriptedBody {
    frames: VecDeque<Result<Frame<Bytes>, std::io::Error>>,
}

impl ScriptedBody {
    fn new(frames: Vec<Result<Frame<Bytes>, std::io::Error>>) -> Self {
        Self {
            frames: frames.into(),
        }
    }
}

impl Body for ScriptedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(self.frames.pop_front())
    }
}

type Seen = Arc<Mutex<Vec<Completion>>>;

fn recorder() -> (Seen, impl FnOnce(Completion) + Send + 'static) {
    let seen: Seen = Arc::default();
    let slot = seen.clone();
    (seen, move |c| slot.lock().unwrap().push(c))
}

fn request(grpc: bool) -> Request<()> {
    let mut req = Request::post("/svc/Method").body(()).unwrap();
    if grpc {
        req.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
    }
    req
}

fn grpc_trailers(code: &str) -> Frame<Bytes> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", code.parse().unwrap());
    Frame::trailers(trailers)
}

fn data(s: &'static str) -> Result<Frame<Bytes>, std::io::Error> {
    Ok(Frame::data(Bytes::from_static(s.as_bytes())))
}

#[tokio::test]
async fn success_is_reported_once_and_only_at_the_end() {
    let (seen, callback) = recorder();
    let classifier = MeshClassifier::new().make_classifier(&request(false));
    let res = Response::new(ScriptedBody::new(vec![data("a"), data("b")]));
    let mut body = observe_response(classifier, res, callback).into_body();
    body.frame().await.unwrap().unwrap();
    assert!(seen.lock().unwrap().is_empty(), "reported before the end");
    body.frame().await.unwrap().unwrap();
    assert!(seen.lock().unwrap().is_empty(), "reported before the end");
    assert!(body.frame().await.is_none());
    drop(body);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Completion::Finished(Outcome::Success)]
    );
}

#[tokio::test]
async fn end_is_noticed_through_is_end_stream() {
    // `Full` says it has ended right after its only frame; a consumer may never poll again.
    let (seen, callback) = recorder();
    let classifier = MeshClassifier::new().make_classifier(&request(false));
    let res = Response::new(Full::new(Bytes::from_static(b"x")));
    let mut body = observe_response(classifier, res, callback).into_body();
    body.frame().await.unwrap().unwrap();
    assert!(body.is_end_stream());
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "reported with the last frame"
    );
    drop(body);
    assert_eq!(seen.lock().unwrap().len(), 1, "reported once");
}

#[tokio::test]
async fn grpc_status_comes_from_trailers() {
    let cases = [
        ("0", Outcome::Success),
        (
            "14",
            Outcome::Failure(FailureClass::Grpc {
                code: GrpcCode::UNAVAILABLE,
                pushback: None,
            }),
        ),
    ];
    for (code, expected) in cases {
        let (seen, callback) = recorder();
        let classifier = MeshClassifier::new().make_classifier(&request(true));
        let res = Response::new(ScriptedBody::new(vec![
            data("msg"),
            Ok(grpc_trailers(code)),
        ]));
        let collected = observe_response(classifier, res, callback)
            .into_body()
            .collect()
            .await
            .unwrap();
        assert!(collected.trailers().is_some());
        assert_eq!(*seen.lock().unwrap(), vec![Completion::Finished(expected)]);
    }
}

#[tokio::test]
async fn dropped_before_trailers_is_cancelled_but_a_known_head_is_kept() {
    let (seen, callback) = recorder();
    let classifier = MeshClassifier::new().make_classifier(&request(true));
    let res = Response::new(ScriptedBody::new(vec![data("msg"), Ok(grpc_trailers("0"))]));
    let mut body = observe_response(classifier, res, callback).into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    assert_eq!(*seen.lock().unwrap(), vec![Completion::Cancelled]);

    let (seen, callback) = recorder();
    let classifier = MeshClassifier::new().make_classifier(&request(false));
    let mut res = Response::new(ScriptedBody::new(vec![data("partial"), data("rest")]));
    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    let mut body = observe_response(classifier, res, callback).into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Completion::Finished(Outcome::Failure(
            FailureClass::Status(StatusCode::INTERNAL_SERVER_ERROR)
        ))]
    );
}

#[tokio::test]
async fn a_body_error_fails_even_a_200() {
    let (seen, callback) = recorder();
    let classifier = MeshClassifier::new().make_classifier(&request(false));
    let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset mid-body");
    let res = Response::new(ScriptedBody::new(vec![data("half"), Err(reset)]));
    let err = observe_response(classifier, res, callback)
        .into_body()
        .collect()
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::ConnectionReset,
        "the error passes through"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Completion::Finished(Outcome::Failure(FailureClass::Error(
            ErrorKind::Transport
        )))]
    );
}

#[tokio::test]
async fn unpolled_body_reports_on_drop() {
    let (seen, callback) = recorder();
    let classifier = MeshClassifier::new().make_classifier(&request(false));
    let res = Response::new(Full::new(Bytes::new()));
    drop(observe_response(classifier, res, callback));
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Completion::Finished(Outcome::Success)]
    );
}

/// A named callback type, as a crate needs when the body type appears in its public API.
struct Tally(Arc<Mutex<Vec<Completion>>>);

impl OnCompletion for Tally {
    fn on_completion(self, completion: Completion) {
        self.0.lock().unwrap().push(completion);
    }
}

#[tokio::test]
async fn named_callback_types_work_like_closures() {
    let seen: Seen = Arc::default();
    let classifier = MeshClassifier::new().make_classifier(&request(false));
    let res = Response::new(Full::new(Bytes::from_static(b"x")));
    let body: mesh_core::classify::ObservedBody<Full<Bytes>, _, Tally> =
        observe_response(classifier, res, Tally(seen.clone())).into_body();
    body.collect().await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Completion::Finished(Outcome::Success)]
    );
}
