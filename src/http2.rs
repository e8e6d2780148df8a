//! What one HTTP/2 connection may cost a listener: its limits (streams, header list, request
//! time, connection age, resets it provokes) and the bound on bytes held for gRPC messages not
//! yet received whole.
//!
//! tonic's decoder reserves a message's declared length as soon as it reads the 5-byte prefix,
//! so 1 000 streams each declaring 4 MiB and sending nothing more made the gateway reserve
//! gigabytes. [`MessageBudget`] sits in front of it: it reads each request body as it comes,
//! holds an incomplete message itself (growing with what arrived, not with what was declared)
//! and hands the decoder only whole messages. What a connection holds this way is counted
//! against its budget; past it the stream is refused with `RESOURCE_EXHAUSTED`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body::Frame;

/// The gRPC message prefix: compression flag and big-endian length.
const PREFIX: usize = 5;

/// The HTTP/2 limits of one listener (`[carrier_api]`, `[peer_api]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Streams one connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Largest header list a request may send.
    pub max_header_list_bytes: u32,
    /// Bytes one connection may have in messages not yet received whole.
    pub max_pending_message_bytes: usize,
    /// How long a unary call may take, its request body included (streams: until the handler
    /// answers with its stream).
    pub request_timeout: Duration,
    /// A connection older than this is asked to go away (GOAWAY) ...
    pub max_connection_age: Duration,
    /// ... and closed this much later if its calls have not finished.
    pub max_connection_age_grace: Duration,
    /// Streams the server may reset for a client's protocol errors before it closes the
    /// connection (the "MadeYouReset" attacks).
    pub max_local_resets: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_concurrent_streams: 128,
            max_header_list_bytes: 16 * 1024,
            max_pending_message_bytes: 64 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_connection_age: Duration::from_secs(3600),
            max_connection_age_grace: Duration::from_secs(60),
            max_local_resets: 128,
        }
    }
}

/// The bytes a connection holds for incomplete messages, shared by its streams.
#[derive(Debug, Default)]
pub struct ConnectionBudget {
    held: AtomicUsize,
}

impl ConnectionBudget {
    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn take(&self, bytes: usize, limit: usize) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|&after| after <= limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Wraps each request body of a connection so that only whole gRPC messages reach the decoder
/// (see the module doc). `max_message` is the listener's decoding limit: a prefix declaring
/// more is passed on at once, for the decoder to refuse.
#[derive(Clone, Copy, Debug)]
pub struct MessageBudget {
    pub limit: usize,
    pub max_message: usize,
}

impl MessageBudget {
    /// The request, its body read through the connection's budget.
    pub fn wrap(
        self,
        request: http::Request<tonic::body::Body>,
        budget: Option<Arc<ConnectionBudget>>,
    ) -> http::Request<tonic::body::Body> {
        let Some(budget) = budget else {
            return request;
        };
        request.map(|body| {
            tonic::body::Body::new(WholeMessages {
                inner: body,
                budget,
                settings: self,
                partial: BytesMut::new(),
                held: 0,
                passthrough: false,
                trailers: None,
                ended: false,
            })
        })
    }
}

/// A request body that yields only whole gRPC messages.
struct WholeMessages {
    inner: tonic::body::Body,
    budget: Arc<ConnectionBudget>,
    settings: MessageBudget,
    /// Received bytes not yet handed on: the start of an incomplete message.
    partial: BytesMut,
    /// What `partial` counts against the budget.
    held: usize,
    /// A prefix declared more than the decoder takes: everything goes on as it comes.
    passthrough: bool,
    /// Trailers read while `partial` still had bytes to hand on.
    trailers: Option<Frame<Bytes>>,
    ended: bool,
}

impl Drop for WholeMessages {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

/// The length of the longest prefix of `bytes` made of whole gRPC messages, and the declared
/// length of the message after it, if its prefix is there.
fn whole_messages(bytes: &[u8]) -> (usize, Option<usize>) {
    let mut at = 0;
    loop {
        let Some(prefix) = bytes.get(at..at + PREFIX) else {
            return (at, None);
        };
        let declared = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if bytes.len() - at - PREFIX < declared {
            return (at, Some(declared));
        }
        at += PREFIX + declared;
    }
}

impl WholeMessages {
    /// Adds what arrived and returns the whole messages it completes, if any.
    fn take(&mut self, mut data: Bytes) -> Result<Option<Bytes>, tonic::Status> {
        if self.passthrough {
            return Ok(Some(data));
        }
        let ready = if self.partial.is_empty() {
            // Most messages arrive whole: hand them on without copying.
            let (whole, _) = whole_messages(&data);
            let ready = data.split_to(whole);
            self.partial.extend_from_slice(&data);
            ready
        } else {
            self.partial.extend_from_slice(&data);
            let (whole, _) = whole_messages(&self.partial);
            self.partial.split_to(whole).freeze()
        };
        let (_, declared) = whole_messages(&self.partial);
        if declared.is_some_and(|len| len > self.settings.max_message) {
            // The decoder refuses it on its prefix, with the listener's own words.
            self.passthrough = true;
            let mut all = BytesMut::from(ready);
            all.extend_from_slice(&self.partial.split());
            self.set_held(0);
            return Ok(Some(all.freeze()));
        }
        let now_held = self.partial.len();
        if now_held > self.held && !self.budget.take(now_held - self.held, self.settings.limit) {
            return Err(tonic::Status::resource_exhausted(format!(
                "this connection holds more than {} bytes of messages not yet received whole; \
                 send fewer large messages at once",
                self.settings.limit
            )));
        }
        if now_held < self.held {
            self.budget.give_back(self.held - now_held);
        }
        self.held = now_held;
        Ok((!ready.is_empty()).then_some(ready))
    }

    fn set_held(&mut self, held: usize) {
        self.budget.give_back(self.held);
        self.held = held;
    }

    /// What is left when the body ends: an incomplete message, for the decoder to report.
    fn rest(&mut self) -> Option<Bytes> {
        if self.partial.is_empty() {
            return None;
        }
        self.set_held(0);
        Some(self.partial.split().freeze())
    }
}

impl http_body::Body for WholeMessages {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(this.trailers.take().map(Ok));
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.ended = true;
                    if let Some(rest) = this.rest() {
                        return Poll::Ready(Some(Ok(Frame::data(rest))));
                    }
                    continue;
                }
                Poll::Ready(Some(Err(status))) => return Poll::Ready(Some(Err(status))),
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            match frame.into_data() {
                Ok(mut data) => {
                    let data = data.copy_to_bytes(data.remaining());
                    match this.take(data) {
                        Ok(Some(ready)) => return Poll::Ready(Some(Ok(Frame::data(ready)))),
                        Ok(None) => continue,
                        Err(status) => return Poll::Ready(Some(Err(status))),
                    }
                }
                Err(trailers) => {
                    this.ended = true;
                    this.trailers = Some(trailers);
                    if let Some(rest) = this.rest() {
                        return Poll::Ready(Some(Ok(Frame::data(rest))));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(&(len as u32).to_be_bytes());
        bytes.extend(std::iter::repeat_n(7u8, len));
        bytes
    }

    fn body(budget: &Arc<ConnectionBudget>, limit: usize) -> WholeMessages {
        WholeMessages {
            inner: tonic::body::Body::empty(),
            budget: Arc::clone(budget),
            settings: MessageBudget {
                limit,
                max_message: 1 << 20,
            },
            partial: BytesMut::new(),
            held: 0,
            passthrough: false,
            trailers: None,
            ended: false,
        }
    }

    #[test]
    fn a_declared_length_reserves_nothing_and_whole_messages_pass_at_once() {
        let budget = Arc::new(ConnectionBudget::default());
        let mut stream = body(&budget, 1 << 20);
        // A prefix declaring 1 MiB (the decoder's limit), then nothing: 5 bytes held.
        let prefix = message(1 << 20)[..PREFIX].to_vec();
        assert_eq!(stream.take(Bytes::from(prefix)).expect("held"), None);
        assert_eq!(budget.held(), PREFIX);
        // Two whole messages in one chunk go on as they are.
        let mut other = body(&budget, 1 << 20);
        let mut two = message(3);
        two.extend(message(4));
        let passed = other.take(Bytes::from(two.clone())).expect("whole");
        assert_eq!(passed.as_deref(), Some(&two[..]));
        drop(stream);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn a_message_in_pieces_is_handed_on_whole_and_the_budget_refuses_beyond_its_limit() {
        let budget = Arc::new(ConnectionBudget::default());
        let mut stream = body(&budget, 100);
        let whole = message(60);
        assert_eq!(
            stream
                .take(Bytes::copy_from_slice(&whole[..30]))
                .expect("part"),
            None
        );
        assert_eq!(budget.held(), 30);
        let passed = stream
            .take(Bytes::copy_from_slice(&whole[30..]))
            .expect("rest");
        assert_eq!(passed.as_deref(), Some(&whole[..]));
        assert_eq!(budget.held(), 0);
        // Another stream of the connection holds 90; this one may not add 20 more.
        let mut neighbour = body(&budget, 100);
        let big = message(200);
        assert_eq!(
            neighbour
                .take(Bytes::copy_from_slice(&big[..90]))
                .expect("held"),
            None
        );
        let refused = stream
            .take(Bytes::copy_from_slice(&message(50)[..20]))
            .expect_err("over the budget");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert_eq!(budget.held(), 90);
    }

    proptest::proptest! {
        /// However the bytes of a run of messages are cut into chunks, what is handed on is the
        /// same bytes, cut only between whole messages, and nothing stays counted.
        #[test]
        fn any_chunking_hands_on_the_same_bytes_in_whole_messages(
            lengths in proptest::collection::vec(0usize..300, 1..12),
            cuts in proptest::collection::vec(1usize..200, 1..40),
        ) {
            let budget = Arc::new(ConnectionBudget::default());
            let mut stream = body(&budget, 1 << 20);
            let wire: Vec<u8> = lengths.iter().flat_map(|&len| message(len)).collect();
            let mut boundaries = vec![0];
            for &len in &lengths {
                boundaries.push(boundaries[boundaries.len() - 1] + PREFIX + len);
            }
            let mut handed = Vec::new();
            let (mut at, mut cut) = (0, cuts.iter().cycle());
            while at < wire.len() {
                let end = (at + cut.next().copied().unwrap_or(1)).min(wire.len());
                if let Some(ready) = stream
                    .take(Bytes::copy_from_slice(&wire[at..end]))
                    .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?
                {
                    handed.extend_from_slice(&ready);
                    proptest::prop_assert!(boundaries.contains(&handed.len()));
                }
                at = end;
            }
            proptest::prop_assert_eq!(handed, wire);
            proptest::prop_assert_eq!(budget.held(), 0);
        }
    }

    #[test]
    fn a_prefix_declaring_more_than_the_decoder_takes_is_passed_on_for_it_to_refuse() {
        let budget = Arc::new(ConnectionBudget::default());
        let mut stream = body(&budget, 1 << 30);
        let prefix = message(2 << 20)[..PREFIX].to_vec();
        let passed = stream.take(Bytes::from(prefix.clone())).expect("passed");
        assert_eq!(passed.as_deref(), Some(&prefix[..]));
        assert_eq!(budget.held(), 0);
    }
}
