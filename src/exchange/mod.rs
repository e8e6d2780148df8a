//! Customs-to-Customs exchange: which administrations receive which records ([`route`]), the
//! forwarders that deliver them ([`forward`]), what peers ask of this gateway — take their
//! deliveries, serve their pull feeds, take their risk notices ([`inbound`]) — with its gRPC
//! adapter ([`service`]), and what is known of each peer's progress ([`Exchange`],
//! [`PeerState`]).
//!
//! A peer's progress is one number, its cursor: every record up to it that the routes give the
//! peer has been acknowledged (or refused, which is remembered per record). Records are
//! delivered in log order, so the delivery state of any record follows from the cursor, the
//! highest sequence sent, and the refusals.

pub mod forward;
pub mod inbound;
pub mod route;
pub mod service;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tonic::transport::{Channel, Endpoint};

use crate::pb::store::RecordKind;
use bytes::Bytes;

use crate::pb::{DeliveryState, EncodedEnvelope, EnvelopeKind, FilingStatus, PeerDelivery};
use crate::store::record::SharedRecord;
use crate::store::{Store, StoreError};
use crate::tls::Identity;

use self::route::Routes;

/// The largest message the peer listener takes: an envelope carries a manifest as large as a
/// carrier may file, and a little more.
pub fn peer_max_message(carrier_max_message: usize) -> usize {
    carrier_max_message + 64 * 1024
}

/// What one peer's forwarder (or pull feed) has done, for status, `peers` and metrics.
#[derive(Debug)]
pub struct PeerState {
    pub id: String,
    /// Where a forwarder delivers; `None` for a peer that pulls its feed.
    pub endpoint: Option<String>,
    pub connected: AtomicBool,
    /// Every record up to here that is for this peer was acknowledged or refused.
    pub cursor: AtomicU64,
    /// The highest sequence sent (or streamed to a pulling peer).
    pub sent: AtomicU64,
    /// Connection attempts that failed, and sessions that broke.
    pub retries: AtomicU64,
    pub delivered: AtomicU64,
    /// Acknowledgements of envelopes the peer already had (redeliveries it absorbed).
    pub duplicates: AtomicU64,
    pub refused: AtomicU64,
    /// Received time (Unix milliseconds) of the oldest record not yet acknowledged; 0: none.
    pub oldest_pending_ms: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl PeerState {
    fn new(peer: &Peer, cursor: u64) -> PeerState {
        PeerState {
            id: peer.id.clone(),
            endpoint: peer.endpoint.clone(),
            connected: AtomicBool::new(false),
            cursor: AtomicU64::new(cursor),
            sent: AtomicU64::new(cursor),
            retries: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            oldest_pending_ms: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub fn set_error(&self, error: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = error;
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A snapshot for operators, against the log's last durable sequence.
    pub fn report(&self, durable: u64) -> PeerReport {
        let cursor = self.cursor.load(Ordering::Acquire);
        let oldest = self.oldest_pending_ms.load(Ordering::Relaxed);
        let lag_seconds = if oldest == 0 || cursor >= durable {
            0.0
        } else {
            let now = unix_millis(SystemTime::now());
            now.saturating_sub(oldest) as f64 / 1000.0
        };
        PeerReport {
            peer: self.id.clone(),
            mode: if self.endpoint.is_some() {
                "push"
            } else {
                "pull"
            }
            .to_owned(),
            endpoint: self.endpoint.clone().unwrap_or_default(),
            connected: self.connected.load(Ordering::Relaxed),
            cursor,
            sent: self.sent.load(Ordering::Relaxed),
            lag_records: durable.saturating_sub(cursor),
            lag_seconds,
            retries: self.retries.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            last_error: self.last_error(),
        }
    }
}

/// One peer as operators see it (`aci-gateway peers`, `/peers` on the admin port).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PeerReport {
    pub peer: String,
    /// "push" (a forwarder delivers) or "pull" (the peer subscribes).
    pub mode: String,
    pub endpoint: String,
    pub connected: bool,
    pub cursor: u64,
    pub sent: u64,
    /// Log records after the cursor (not all of them need be for this peer).
    pub lag_records: u64,
    /// Age of the oldest record not yet acknowledged.
    pub lag_seconds: f64,
    pub retries: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub refused: u64,
    pub last_error: Option<String>,
}

/// A peer administration's gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its gateway id: the identity in its certificate (`urn:aci:admin:<id>`).
    pub id: String,
    /// Where its peer API listens, e.g. `https://nl-gw.example:7444`: a forwarder delivers
    /// there. Without one, the peer pulls its feed (`Subscribe`) instead.
    pub endpoint: Option<String>,
}

impl PeerReport {
    /// What the metrics endpoint renders of it.
    pub fn series(&self) -> crate::telemetry::PeerSeries {
        crate::telemetry::PeerSeries {
            peer: self.peer.clone(),
            connected: self.connected,
            cursor: self.cursor,
            lag_records: self.lag_records,
            lag_seconds: self.lag_seconds,
            retries: self.retries,
            delivered: self.delivered,
            duplicates: self.duplicates,
            refused: self.refused,
        }
    }
}

/// The exchange as the rest of the gateway sees it: this gateway's id, the routes, and each
/// configured peer's state.
#[derive(Debug)]
pub struct Exchange {
    pub gateway_id: String,
    pub routes: Routes,
    peers: BTreeMap<String, Arc<PeerState>>,
    store: Store,
}

impl Exchange {
    /// Loads each peer's cursor from the store.
    pub fn new(
        gateway_id: &str,
        peers: &[Peer],
        routes: Routes,
        store: Store,
    ) -> Result<Exchange, StoreError> {
        let mut states = BTreeMap::new();
        for peer in peers {
            let cursor = store.index().cursor(&peer.id)?;
            states.insert(peer.id.clone(), Arc::new(PeerState::new(peer, cursor)));
        }
        Ok(Exchange {
            gateway_id: gateway_id.to_owned(),
            routes,
            peers: states,
            store,
        })
    }

    pub fn peer(&self, id: &str) -> Option<&Arc<PeerState>> {
        self.peers.get(id)
    }

    pub fn peers(&self) -> impl Iterator<Item = &Arc<PeerState>> {
        self.peers.values()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Every peer, as operators see it.
    pub fn reports(&self) -> Vec<PeerReport> {
        // Against what carriers were told is durable: the indexed head (`store.durable()`) is
        // a moment behind it, and a lag of 0 must mean the peer has every acknowledged record.
        let durable = self.store.stats().durable_seq.load(Ordering::Acquire);
        self.peers.values().map(|p| p.report(durable)).collect()
    }

    /// Whether `record` goes to `peer`.
    pub fn is_for(&self, peer: &str, record: &SharedRecord) -> Result<bool, Unroutable> {
        is_for(&self.routes, peer, record)
    }

    /// Records that `peer` acknowledged everything up to `sequence`, durably enough: a lost
    /// update means a redelivery, which the peer absorbs.
    pub fn acknowledge(&self, state: &PeerState, sequence: u64) -> Result<(), StoreError> {
        if state.cursor.fetch_max(sequence, Ordering::AcqRel) < sequence {
            self.store.index().advance_cursor(&state.id, sequence)?;
        }
        Ok(())
    }

    /// Where a filing stands with each peer the routes share it with (by its routing facts):
    /// the state of its latest own record (filing, amendment, invalidation, arrival) there.
    pub fn deliveries(
        &self,
        status: &FilingStatus,
        routing: Option<&crate::pb::store::RouteFacts>,
    ) -> Result<Vec<PeerDelivery>, StoreError> {
        let Some(facts) = routing else {
            return Ok(Vec::new());
        };
        let own = own_sequences(status);
        let Some(&latest) = own.last() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for peer in self.routes.peers_for(facts) {
            let Some(state) = self.peers.get(&peer) else {
                continue;
            };
            let mut delivery = PeerDelivery {
                administration: peer.clone(),
                sequence: latest,
                ..PeerDelivery::default()
            };
            let mut refusal = None;
            for &sequence in own.iter().rev() {
                if let Some(found) = self.store.index().refusal(&peer, sequence)? {
                    refusal = Some((sequence, found));
                    break;
                }
            }
            let state_of = if let Some((sequence, (code, message))) = refusal {
                delivery.sequence = sequence;
                delivery.refusal_code = code;
                delivery.refusal_message = message;
                DeliveryState::Refused
            } else if state.cursor.load(Ordering::Acquire) >= latest {
                DeliveryState::Acknowledged
            } else if state.sent.load(Ordering::Acquire) >= latest {
                DeliveryState::Sent
            } else {
                DeliveryState::Queued
            };
            delivery.state = state_of as i32;
            out.push(delivery);
        }
        Ok(out)
    }
}

/// The sequences of a filing's own records (not notices, not links), in order.
fn own_sequences(status: &FilingStatus) -> Vec<u64> {
    status
        .history
        .iter()
        .filter(|t| {
            matches!(
                t.event.as_str(),
                "registered" | "amended" | "invalidated" | "invalidated automatically" | "arrived"
            )
        })
        .map(|t| t.sequence)
        .collect()
}

/// A filing whose stored manifest cannot be read for routing. Its hash held, so this is a bug
/// or a manifest this build cannot read, not damage; a reader stops there, as at a record it
/// cannot read, rather than send it to peers the routes may not give it or skip it unseen.
#[derive(Debug, thiserror::Error)]
#[error("record {sequence}: its manifest cannot be read for routing: {source}")]
pub struct Unroutable {
    pub sequence: u64,
    pub source: prost::DecodeError,
}

/// Whether the routes give `record` to `peer`. Filings and amendments are routed on their
/// manifest, invalidations and arrivals on the routing facts they carry, a referral answer goes
/// to the administration that asked, a control notice to the others; received envelopes,
/// refusals, other notices and timers go nowhere.
pub fn is_for(routes: &Routes, peer: &str, record: &SharedRecord) -> Result<bool, Unroutable> {
    Ok(match record.kind() {
        RecordKind::Filing | RecordKind::Amendment => match record.manifest.as_deref() {
            None => false,
            Some(manifest) => {
                let facts =
                    crate::store::route_facts_encoded(manifest).map_err(|source| Unroutable {
                        sequence: record.sequence,
                        source,
                    })?;
                routes.sends_to(peer, &facts)
            }
        },
        RecordKind::Invalidation | RecordKind::Arrival => record
            .routing
            .as_ref()
            .is_some_and(|facts| routes.sends_to(peer, facts)),
        RecordKind::ReferralAnswer => record.origin == peer,
        // A control is shared with the other administrations the filing goes to: once it is
        // announced, none of them may see the filing change.
        RecordKind::Notice => {
            record.origin != peer
                && record
                    .notice
                    .as_ref()
                    .is_some_and(|n| n.kind() == crate::pb::NoticeKind::Control)
                && record
                    .routing
                    .as_ref()
                    .is_some_and(|facts| routes.sends_to(peer, facts))
        }
        RecordKind::Received
        | RecordKind::ReceivedRefused
        | RecordKind::TimerFired
        | RecordKind::Unspecified => false,
    })
}

/// The envelope that shares `record` with a peer.
pub fn envelope_of(origin: &str, record: SharedRecord) -> EncodedEnvelope {
    let kind = match record.kind() {
        RecordKind::Filing => EnvelopeKind::Filing,
        RecordKind::Amendment => EnvelopeKind::Amendment,
        RecordKind::Invalidation => EnvelopeKind::Invalidation,
        RecordKind::Arrival => EnvelopeKind::Arrival,
        RecordKind::ReferralAnswer => EnvelopeKind::ReferralAnswer,
        RecordKind::Notice => EnvelopeKind::Control,
        _ => EnvelopeKind::Unspecified,
    };
    let answering = kind == EnvelopeKind::ReferralAnswer;
    let controlling = kind == EnvelopeKind::Control;
    EncodedEnvelope {
        origin: origin.to_owned(),
        origin_sequence: record.sequence,
        kind: kind as i32,
        digest: if record.digest.is_empty() {
            String::new()
        } else {
            hex::encode(&record.digest)
        },
        mrn: record.mrn,
        filer: record.filer,
        lrn: record.lrn,
        version: record.version,
        manifest_parts: record.manifest.map(Bytes::from).into_iter().collect(),
        filed_at: record.received_at,
        notice_id: if answering {
            record
                .notice
                .as_ref()
                .map(|n| n.notice_id.clone())
                .unwrap_or_default()
        } else {
            String::new()
        },
        referral_answer: record.referral_answer,
        arrival: record.arrival,
        notice_administration: if controlling {
            record.origin
        } else {
            String::new()
        },
        notice: if controlling { record.notice } else { None },
        answer: if answering {
            record.reason.clone()
        } else {
            String::new()
        },
        reason: if answering {
            String::new()
        } else {
            record.reason
        },
        traceparent: record.traceparent,
    }
}

/// When a record was received, in Unix milliseconds.
fn record_millis(record: &SharedRecord) -> u64 {
    record.received_at.map_or(0, |t| {
        u64::try_from(t.seconds).unwrap_or(0) * 1000
            + u64::try_from(t.nanos / 1_000_000).unwrap_or(0)
    })
}

fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{endpoint} is not an https://host:port address")]
    Endpoint { endpoint: String },
    #[error("cannot connect to {endpoint}: {source}")]
    Transport {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// How long a connection attempt to a peer may take (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to a peer's API over mutual TLS. The peer's certificate must chain to the peer CA
/// in `tls`, match the endpoint's host name, and name `peer_id` (`urn:aci:admin:<peer_id>`):
/// a valid certificate of another administration is refused.
pub async fn connect(
    endpoint: &str,
    peer_id: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Channel, ConnectError> {
    let uri: http::Uri = endpoint.parse().map_err(|_| ConnectError::Endpoint {
        endpoint: endpoint.to_owned(),
    })?;
    let (Some(host), Some(port)) = (uri.host(), uri.port_u16()) else {
        return Err(ConnectError::Endpoint {
            endpoint: endpoint.to_owned(),
        });
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    // tonic speaks HTTP/2 over the stream the connector returns; TLS is done here, so that the
    // peer's identity can be checked before any byte of a request is sent.
    let plain = Endpoint::from_shared(format!(
        "http://{}",
        uri.authority().map_or("", |a| a.as_str())
    ))
    .map_err(|source| ConnectError::Transport {
        endpoint: endpoint.to_owned(),
        source,
    })?
    .connect_timeout(CONNECT_TIMEOUT)
    .tcp_nodelay(true)
    .http2_keep_alive_interval(Duration::from_secs(20))
    .keep_alive_timeout(Duration::from_secs(20));
    let expected = Identity::Admin(peer_id.to_owned());
    let connector = tower::service_fn(move |_: http::Uri| {
        let (tls, host, expected) = (Arc::clone(&tls), host.clone(), expected.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = rustls_pki_types::ServerName::try_from(host.clone())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let stream = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio_rustls::TlsConnector::from(tls).connect(name, tcp),
            )
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"))??;
            let identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(crate::tls::identity_of);
            if identity.as_ref() != Some(&expected) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("the peer's certificate names {identity:?}, not {expected:?}"),
                ));
            }
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    plain
        .connect_with_connector(connector)
        .await
        .map_err(|source| ConnectError::Transport {
            endpoint: endpoint.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::store::{LogRecord, RouteFacts};
    use crate::pb::{Envelope, TransportMode};

    fn routes() -> Routes {
        Routes {
            routes: vec![route::Route {
                peer: "NL-1".into(),
                first_entry_countries: Vec::new(),
                routing_countries: Vec::new(),
                delivery_countries: Vec::new(),
                modes: vec![TransportMode::Sea],
            }],
        }
    }

    /// Whether the routes give `record` to `peer`, as the forwarder reads it.
    fn routed(routes: &Routes, peer: &str, record: &LogRecord) -> bool {
        is_for(routes, peer, &SharedRecord::from(record.clone())).expect("routable")
    }

    /// The envelope of `record`, as the peer decodes it.
    fn envelope_as_read(origin: &str, record: LogRecord) -> Envelope {
        envelope_of(origin, record.into())
            .decoded()
            .expect("an envelope decodes")
    }

    fn record(kind: RecordKind) -> LogRecord {
        LogRecord {
            kind: kind as i32,
            sequence: 7,
            mrn: "26GB00000000000070".into(),
            ..LogRecord::default()
        }
    }

    #[test]
    fn a_control_goes_to_the_other_administrations_of_the_filing_only() {
        let sea: crate::pb::Manifest =
            crate::pb::from_json(include_str!("../../schemas/examples/sea-f10.json"))
                .expect("sample");
        let mut routes = routes();
        routes.routes.push(route::Route {
            peer: "BE-1".into(),
            ..routes.routes[0].clone()
        });
        let notice = |kind: crate::pb::NoticeKind| LogRecord {
            routing: Some(route::facts_of(&sea)),
            origin: "NL-1".into(),
            notice: Some(crate::pb::Notice {
                notice_id: "N-1".into(),
                kind: kind as i32,
                control: Some(crate::pb::Control {
                    office: "NL000396".into(),
                    ..crate::pb::Control::default()
                }),
                ..crate::pb::Notice::default()
            }),
            ..record(RecordKind::Notice)
        };
        let control = notice(crate::pb::NoticeKind::Control);
        assert!(routed(&routes, "BE-1", &control));
        assert!(!routed(&routes, "NL-1", &control), "not back to its sender");
        assert!(
            !routed(&routes, "FR-1", &control),
            "not to one the filing skips"
        );
        assert!(!routed(
            &routes,
            "BE-1",
            &notice(crate::pb::NoticeKind::DoNotLoad)
        ));
        let envelope = envelope_as_read("GB-1", control);
        assert_eq!(envelope.kind(), EnvelopeKind::Control);
        assert_eq!(envelope.notice_administration, "NL-1");
        assert_eq!(
            envelope.notice.and_then(|n| n.control).map(|c| c.office),
            Some("NL000396".to_owned())
        );
    }

    #[test]
    fn each_kind_of_record_is_routed_by_what_it_carries() {
        let sea: crate::pb::Manifest =
            crate::pb::from_json(include_str!("../../schemas/examples/sea-f10.json"))
                .expect("sample");
        let routes = routes();
        let filing = LogRecord {
            manifest: Some(Box::new(sea.clone())),
            ..record(RecordKind::Filing)
        };
        assert!(routed(&routes, "NL-1", &filing));
        assert!(!routed(&routes, "BE-1", &filing));
        let sea_facts = route::facts_of(&sea);
        let invalidation = LogRecord {
            routing: Some(sea_facts.clone()),
            ..record(RecordKind::Invalidation)
        };
        assert!(routed(&routes, "NL-1", &invalidation));
        let air_arrival = LogRecord {
            routing: Some(RouteFacts {
                transport_mode: TransportMode::Air as i32,
                ..sea_facts
            }),
            ..record(RecordKind::Arrival)
        };
        assert!(!routed(&routes, "NL-1", &air_arrival));
        // What came from a peer, notices other than controls, and timers go nowhere,
        // whatever they carry.
        for kind in [
            RecordKind::Received,
            RecordKind::ReceivedRefused,
            RecordKind::Notice,
            RecordKind::TimerFired,
        ] {
            let other = LogRecord {
                manifest: Some(Box::new(sea.clone())),
                origin: "NL-1".into(),
                ..record(kind)
            };
            assert!(!routed(&routes, "NL-1", &other), "{kind:?}");
        }
        // A referral answer goes to the administration that asked, routes or not.
        let answer = LogRecord {
            origin: "DE-9".into(),
            ..record(RecordKind::ReferralAnswer)
        };
        assert!(routed(&routes, "DE-9", &answer));
        assert!(!routed(&routes, "NL-1", &answer));
    }

    #[test]
    fn an_envelope_carries_the_record_and_its_origin() {
        let answer = LogRecord {
            origin: "DE-9".into(),
            reason: "attached".into(),
            notice: Some(crate::pb::Notice {
                notice_id: "R-1".into(),
                ..Default::default()
            }),
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            ..record(RecordKind::ReferralAnswer)
        };
        let envelope = envelope_as_read("GB-1", answer);
        assert_eq!(envelope.origin, "GB-1");
        assert_eq!(envelope.origin_sequence, 7);
        assert_eq!(envelope.kind(), EnvelopeKind::ReferralAnswer);
        assert_eq!(
            (envelope.notice_id.as_str(), envelope.answer.as_str()),
            ("R-1", "attached")
        );
        assert!(envelope.reason.is_empty());
        assert!(envelope.traceparent.starts_with("00-0af7"));
        let invalidation = LogRecord {
            reason: "cancelled".into(),
            digest: vec![0xab; 32],
            ..record(RecordKind::Invalidation)
        };
        let envelope = envelope_as_read("GB-1", invalidation);
        assert_eq!(envelope.kind(), EnvelopeKind::Invalidation);
        assert_eq!(envelope.reason, "cancelled");
        assert_eq!(envelope.digest, "ab".repeat(32));
    }

    /// A filing's envelope carries its manifest as stored, and reads as the `Envelope` with it
    /// (that `EncodedEnvelope`'s tags are `Envelope`'s: `pb::envelope`'s tests).
    #[test]
    fn a_shared_envelope_is_an_envelope_with_its_manifest_encoded() {
        use prost::Message;
        let sea: crate::pb::Manifest =
            crate::pb::from_json(include_str!("../../schemas/examples/sea-f10.json"))
                .expect("sample");
        let filing = LogRecord {
            manifest: Some(Box::new(sea.clone())),
            digest: vec![0xcd; 32],
            ..record(RecordKind::Filing)
        };
        let shared = envelope_of("GB-1", filing.into());
        assert_eq!(
            shared.manifest_parts,
            vec![Bytes::from(sea.encode_to_vec())]
        );
        let envelope = shared.decoded().expect("decodes");
        assert_eq!(envelope.manifest.as_deref(), Some(&sea));
        assert_eq!(envelope.digest, "cd".repeat(32));
    }

    /// A filing whose stored manifest cannot be read is an error for the reader, not a
    /// guess: neither sent to every peer nor skipped.
    #[test]
    fn a_filing_whose_manifest_cannot_be_read_is_routed_nowhere_but_reported() {
        let filing = SharedRecord {
            kind: RecordKind::Filing as i32,
            sequence: 9,
            manifest: Some(vec![0xff, 0xff, 0xff]),
            ..SharedRecord::default()
        };
        let error = is_for(&routes(), "NL-1", &filing).expect_err("unreadable");
        assert_eq!(error.sequence, 9);
    }
}
