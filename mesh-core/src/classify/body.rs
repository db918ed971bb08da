//! [`ObservedBody`] and [`observe_response`]; the public docs are on [`observe_response`].

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project::pin_project;
use tower_http::classify::{ClassifiedResponse, ClassifyEos, ClassifyResponse};

use super::{ErrorKind, FailureClass, Outcome};

/// How an observed response ended; see [`observe_response`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The outcome is known: from the head, the trailers, or a body error.
    Finished(Outcome),
    /// The body was dropped before its end while the outcome depended on it (gRPC trailers): the
    /// caller gave up, and nothing is known about the server. Breakers and ejection should count it
    /// as neither success nor failure.
    Cancelled,
}

impl Completion {
    /// The outcome, unless cancelled.
    pub fn outcome(&self) -> Option<&Outcome> {
        match self {
            Completion::Finished(outcome) => Some(outcome),
            Completion::Cancelled => None,
        }
    }
}

/// What an [`ObservedBody`] calls, once, when the body is done.
///
/// Implemented for every `FnOnce(Completion)` closure. Implement it for a named type (a permit, a
/// load ticket) so that `ObservedBody<B, E, YourType>` can appear in a public API without boxing.
pub trait OnCompletion {
    /// Receives the completion. Called exactly once, from `poll_frame` or from `drop`.
    fn on_completion(self, completion: Completion);
}

impl<F: FnOnce(Completion)> OnCompletion for F {
    fn on_completion(self, completion: Completion) {
        self(completion)
    }
}

/// Classifies `response`'s head with `classifier` and wraps its body so that `on_complete` runs once
/// when the body ends, fails or is dropped.
///
/// A response head is not the end of a request. Load measured "until the body ends" (PeakEWMA), gRPC
/// statuses that arrive in trailers, and bodies that break half-way (a backend reset mid-stream) are
/// only known when the body is done. Balancers, circuit breakers, retries and metrics all need that
/// moment, so mesh-core provides it once: [`observe_response`] classifies the head with any
/// mesh-core classifier and wraps the body; the callback runs exactly once with a [`Completion`]:
///
/// | how the body ended                             | completion                                    |
/// |------------------------------------------------|-----------------------------------------------|
/// | end of stream (or trailers)                    | `Finished`: the head's outcome, or the trailers' (gRPC) |
/// | the body returned an error                     | `Finished(Failure(Error(kind)))`, whatever the head said |
/// | dropped early, outcome known from the head     | `Finished`: the head's outcome                |
/// | dropped early, outcome waited for trailers     | `Cancelled`                                   |
///
/// The end is noticed as soon as the inner body reports [`is_end_stream`](http_body::Body::is_end_stream)
/// after a frame, so consumers that stop polling at that point (hyper does) still complete on time.
///
/// The callback is any [`OnCompletion`]: a closure `FnOnce(Completion)`, or a type of your own when
/// the body type must be nameable (a closure type cannot appear in a public associated type, and
/// boxing it would allocate per request). Either way the wrapper adds no allocation.
///
/// ```
/// use std::sync::{Arc, Mutex};
///
/// use http::{Request, Response, StatusCode};
/// use http_body_util::{BodyExt, Full};
/// use mesh_core::classify::{observe_response, Completion, MakeClassifier, MeshClassifier};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let req = Request::get("/").body(()).unwrap();
/// let classifier = MeshClassifier::new().make_classifier(&req);
/// let mut res = Response::new(Full::new(bytes::Bytes::from_static(b"oops")));
/// *res.status_mut() = StatusCode::BAD_GATEWAY;
///
/// let seen = Arc::new(Mutex::new(None));
/// let slot = seen.clone();
/// let res = observe_response(classifier, res, move |c: Completion| *slot.lock().unwrap() = Some(c));
/// assert!(seen.lock().unwrap().is_none(), "nothing is reported before the body ends");
/// res.into_body().collect().await.unwrap();
/// let completion = seen.lock().unwrap().take().unwrap();
/// assert!(completion.outcome().unwrap().is_failure());
/// # }
/// ```
pub fn observe_response<C, B, F>(
    classifier: C,
    response: Response<B>,
    on_complete: F,
) -> Response<ObservedBody<B, C::ClassifyEos, F>>
where
    C: ClassifyResponse<FailureClass = FailureClass>,
    F: OnCompletion,
{
    let pending = match classifier.classify_response(&response) {
        ClassifiedResponse::Ready(result) => Pending::Decided(Outcome::from(result)),
        ClassifiedResponse::RequiresEos(eos) => Pending::AwaitEos(eos),
    };
    response.map(|inner| ObservedBody {
        inner,
        observer: Observer {
            state: Some((pending, on_complete)),
        },
    })
}

/// A response body that reports its [`Completion`] once; built by [`observe_response`].
#[pin_project]
pub struct ObservedBody<B, E, F: OnCompletion> {
    #[pin]
    inner: B,
    observer: Observer<E, F>,
}

impl<B: fmt::Debug, E, F: OnCompletion> fmt::Debug for ObservedBody<B, E, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservedBody")
            .field("inner", &self.inner)
            .field("completed", &self.observer.state.is_none())
            .finish()
    }
}

enum Pending<E> {
    Decided(Outcome),
    AwaitEos(E),
}

/// Holds the pending classification and the callback; reports on drop if nothing else did.
struct Observer<E, F: OnCompletion> {
    state: Option<(Pending<E>, F)>,
}

impl<E, F: OnCompletion> Observer<E, F>
where
    E: ClassifyEos<FailureClass = FailureClass>,
{
    fn end(&mut self, trailers: Option<&HeaderMap>) {
        if let Some((pending, callback)) = self.state.take() {
            let outcome = match pending {
                Pending::Decided(outcome) => outcome,
                Pending::AwaitEos(eos) => Outcome::from(eos.classify_eos(trailers)),
            };
            callback.on_completion(Completion::Finished(outcome));
        }
    }

    fn fail<Err: 'static>(&mut self, error: &Err) {
        if let Some((_, callback)) = self.state.take() {
            let kind = ErrorKind::of(error);
            let outcome = Outcome::Failure(FailureClass::Error(kind));
            callback.on_completion(Completion::Finished(outcome));
        }
    }
}

impl<E, F: OnCompletion> Drop for Observer<E, F> {
    fn drop(&mut self) {
        if let Some((pending, callback)) = self.state.take() {
            callback.on_completion(match pending {
                Pending::Decided(outcome) => Completion::Finished(outcome),
                Pending::AwaitEos(_) => Completion::Cancelled,
            });
        }
    }
}

impl<B, E, F> Body for ObservedBody<B, E, F>
where
    B: Body,
    B::Error: 'static,
    E: ClassifyEos<FailureClass = FailureClass>,
    F: OnCompletion,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            None => this.observer.end(None),
            Some(Err(error)) => this.observer.fail(error),
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.observer.end(Some(trailers));
                } else if this.inner.is_end_stream() {
                    this.observer.end(None);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
