//! What a retry is rebuilt from: a copy of the caller's request head, the replayable body and the
//! request's deadline.
//!
//! The first attempt takes the caller's head itself; the copy is made before it is sent (the inner
//! service consumes its request). It is made to be cheap when no retry follows, the usual case:
//!
//! - the headers are copied into one boxed slice of name/value pairs, in the map's order (one
//!   allocation, none when there are no headers; a `HeaderMap` clone takes two), and made back
//!   into a map only for a retry;
//! - the [`Deadline`] is kept aside rather than in the copy's extensions, so a request whose only
//!   extension is its deadline costs no extension map here. When the deadline came in the
//!   request's extensions it is put back into each retry's; when the timeout layer handed it over
//!   [directly](crate::timeout::TakesDeadline) it is not (the first attempt did not carry it
//!   either), so every attempt carries the extensions the caller's request had;
//! - the [`AvoidTried`] marker is put in each retry's extensions, never in the first attempt's: a
//!   request answered at once carries nothing extra.

use std::time::Duration;

use http::{Extensions, HeaderName, HeaderValue, Method, Request, Uri, Version};
use mesh_core::attempts::AvoidTried;
use mesh_core::classify::is_grpc_request;

use crate::body::ReplayBody;
use crate::timeout::Deadline;
use crate::timeout::grpc_timeout::{self, GRPC_TIMEOUT};

/// Where the retry layer learns a request's deadline.
#[derive(Clone, Copy, Debug)]
pub(super) enum DeadlineFrom {
    /// The [`Deadline`] in the request's extensions, if any.
    Extensions,
    /// Handed over by the timeout layer above, alongside the request.
    Handed(Option<Deadline>),
}

pub(super) struct Template<B> {
    method: Method,
    uri: Uri,
    version: Version,
    headers: Box<[(HeaderName, HeaderValue)]>,
    /// The caller's extensions, without the deadline when it came in them.
    extensions: Extensions,
    pub(super) body: ReplayBody<B>,
    pub(super) deadline: Option<Deadline>,
    /// Whether the deadline came in the caller's extensions (and goes back into each retry's).
    deadline_in_extensions: bool,
    avoid_tried: bool,
}

impl<B> Template<B> {
    /// Copies the head of `head` for retries, with `body`.
    pub(super) fn new<T>(
        head: &Request<T>,
        body: ReplayBody<B>,
        deadline: DeadlineFrom,
        avoid_tried: bool,
    ) -> Self {
        let source = head.extensions();
        let (deadline, deadline_in_extensions) = match deadline {
            DeadlineFrom::Extensions => {
                let deadline = source.get::<Deadline>().copied();
                (deadline, deadline.is_some())
            }
            DeadlineFrom::Handed(deadline) => (deadline, false),
        };
        let mut extensions = Extensions::new();
        if source.len() > usize::from(deadline_in_extensions) {
            extensions = source.clone();
            if deadline_in_extensions {
                extensions.remove::<Deadline>();
            }
        }
        let map = head.headers();
        // `len` counts every value and `iter` yields every value: the capacity is exact, so the
        // boxed slice is the vector's one allocation.
        let mut headers = Vec::with_capacity(map.len());
        headers.extend(
            map.iter()
                .map(|(name, value)| (name.clone(), value.clone())),
        );
        Self {
            method: head.method().clone(),
            uri: head.uri().clone(),
            version: head.version(),
            headers: headers.into_boxed_slice(),
            extensions,
            body,
            deadline,
            deadline_in_extensions,
            avoid_tried,
        }
    }

    /// A retry's request: the copied head, cloned, with the retry's `body`; on a gRPC request (a
    /// `POST` with gRPC's content type, as the timeout layer tells them) that carried
    /// `grpc-timeout`, that header set to `time_left`; the deadline put back when it came in
    /// the extensions, and the [`AvoidTried`] marker when asked for.
    pub(super) fn retry_request(
        &self,
        body: ReplayBody<B>,
        time_left: Option<Duration>,
    ) -> Request<ReplayBody<B>> {
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        let headers = request.headers_mut();
        headers.reserve(self.headers.len());
        for (name, value) in &*self.headers {
            headers.append(name.clone(), value.clone());
        }
        if let Some(left) = time_left
            && is_grpc_request(&request)
            && request.headers().contains_key(GRPC_TIMEOUT)
        {
            // The retry starts later than the first attempt: tell the server what is left then.
            request
                .headers_mut()
                .insert(GRPC_TIMEOUT, grpc_timeout::encode(left));
        }
        *request.extensions_mut() = self.extensions.clone();
        if self.deadline_in_extensions
            && let Some(deadline) = self.deadline
        {
            request.extensions_mut().insert(deadline);
        }
        if self.avoid_tried {
            request.extensions_mut().insert(AvoidTried);
        }
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{ACCEPT, CONTENT_TYPE};
    use tokio::time::Instant;

    fn empty() -> ReplayBody<http_body_util::Empty<bytes::Bytes>> {
        ReplayBody::new(http_body_util::Empty::new(), 1024)
    }

    fn head() -> Request<()> {
        Request::post("http://orders/items?x=1")
            .version(Version::HTTP_2)
            .header(ACCEPT, "a")
            .header("x-multi", "1")
            .header(CONTENT_TYPE, "application/grpc")
            .header("x-multi", "2")
            .header(GRPC_TIMEOUT, "5S")
            .body(())
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_has_the_callers_head_every_value_in_order() {
        let head = head();
        let template = Template::new(&head, empty(), DeadlineFrom::Extensions, false);
        let retry = template.retry_request(empty(), None);
        assert_eq!(retry.method(), head.method());
        assert_eq!(retry.uri(), head.uri());
        assert_eq!(retry.version(), Version::HTTP_2);
        assert_eq!(retry.headers(), head.headers());
        let multi: Vec<_> = retry.headers().get_all("x-multi").iter().collect();
        assert_eq!(multi, ["1", "2"]);
        assert_eq!(retry.extensions().len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn grpc_timeout_is_rewritten_with_the_time_left() {
        let template = Template::new(&head(), empty(), DeadlineFrom::Extensions, false);
        let retry = template.retry_request(empty(), Some(Duration::from_millis(1500)));
        assert_eq!(
            retry.headers()[GRPC_TIMEOUT],
            grpc_timeout::encode(Duration::from_millis(1500))
        );
        // Not on a request that is not gRPC (by its content type, or a GET whatever its content
        // type), nor on one without the header.
        let mut plain = head();
        plain.headers_mut().remove(CONTENT_TYPE);
        let mut get = head();
        *get.method_mut() = Method::GET;
        for head in [plain, get] {
            let template = Template::new(&head, empty(), DeadlineFrom::Extensions, false);
            let retry = template.retry_request(empty(), Some(Duration::from_millis(1500)));
            assert_eq!(retry.headers()[GRPC_TIMEOUT], "5S");
        }
        let mut bare = head();
        bare.headers_mut().remove(GRPC_TIMEOUT);
        let template = Template::new(&bare, empty(), DeadlineFrom::Extensions, false);
        let retry = template.retry_request(empty(), Some(Duration::from_millis(1500)));
        assert!(!retry.headers().contains_key(GRPC_TIMEOUT));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_goes_back_only_where_it_came_from() {
        let deadline = Deadline::at(Instant::now() + Duration::from_secs(3));
        #[derive(Clone, Debug, PartialEq)]
        struct Other(u8);

        // From the extensions: kept aside, put back on retries with the other values.
        let mut head = head();
        head.extensions_mut().insert(deadline);
        head.extensions_mut().insert(Other(7));
        let template = Template::new(&head, empty(), DeadlineFrom::Extensions, true);
        assert_eq!(template.deadline, Some(deadline));
        assert!(template.extensions.get::<Deadline>().is_none());
        let retry = template.retry_request(empty(), None);
        assert_eq!(retry.extensions().get::<Deadline>(), Some(&deadline));
        assert_eq!(retry.extensions().get::<Other>(), Some(&Other(7)));
        assert!(retry.extensions().get::<AvoidTried>().is_some());

        // Handed over: used for decisions, never added to a retry's extensions.
        let template = Template::new(
            &self::head(),
            empty(),
            DeadlineFrom::Handed(Some(deadline)),
            false,
        );
        assert_eq!(template.deadline, Some(deadline));
        let retry = template.retry_request(empty(), None);
        assert_eq!(retry.extensions().len(), 0);
    }
}
