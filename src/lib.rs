//! # aci-gateway
//!
//! An advance cargo information gateway in the spirit of the WCO SAFE Framework: carriers file
//! pre-arrival manifests over mutual-TLS gRPC; each filing is validated, made durable in an
//! append-only log, and answered with a receipt (MRN) or every violation at once.
//!
//! ## Data flow
//!
//! ```text
//! carrier ──mTLS gRPC──► ingest ──► validate ──► store (log, fdatasync) ──► receipt (MRN)
//!    ▲                     │            │                  │
//!    │                     ◄── coded violations            └─► forwarder per peer ──mTLS──► peer
//!    └── notifications ◄── store ◄── peer API (Deliver, Subscribe, Notify) ◄──mTLS── peer
//! ```
//!
//! ## Layout
//!
//! - [`cli`]: the `aci-gateway` commands (`serve`, `submit`, `status`, `peers`, `notify`, ...),
//!   one file per group; `cli::run` only dispatches.
//! - [`config`]: the TOML configuration, checked and sealed.
//! - [`demo`]: `aci-gateway demo`, two administrations' gateways end to end in one process.
//! - [`server`]: wires store, listeners and admin port; one shutdown path.
//! - [`admin`]: the admin port (`/healthz`, `/readyz`, `/metrics`, `/peers`) on hyper, and
//!   its client.
//! - [`exchange`]: Customs-to-Customs exchange: routing, per-peer forwarders, the peer API
//!   (deliveries, pull feeds, risk notices) and each peer's progress.
//! - [`ingest`]: the carrier API, a thin gRPC adapter.
//! - [`status`]: the one mapping from outcomes to gRPC statuses, for both listeners.
//! - [`validate`]: findings and reports; required data and identifier formats.
//! - [`store`]: the segment log (framing, CRC, hash chain), group commit, the sled index.
//! - [`load`]: `aci-gateway load`, the load generator.
//! - [`ids`]: MRN, LRN, EORI and sequence types; the ISO 6346 check character.
//! - [`tls`]: rustls configurations (client profile, CRLs, reload), the accept loop,
//!   identities from certificates.
//! - [`http2`]: what one HTTP/2 connection may cost a listener; whole messages only to the
//!   decoder.
//! - [`pki`]: the development PKI created on first start.
//! - [`client`]: a carrier's client and an administration's peer client (CLI, tests).
//! - [`telemetry`]: logging and the Prometheus counters.
//! - [`pb`]: generated protobuf types and proto3 JSON.
//!
//! ## Where to add
//!
//! - A business rule: a check in the fitting file of `validate/rules/`, registered in
//!   `validate::rules::RULES` (id, code, default severity, what it checks); `aci-gateway rules`
//!   regenerates `schemas/RULES.md`, which a test keeps current.
//! - A carrier RPC: the method in `proto/aci/v1/carrier.proto`, its handler in `ingest`, its
//!   refusals in [`status`] (the same outcome gets the same status on both listeners).
//! - A limit on what a caller may cost: per connection in [`http2`], per carrier in
//!   `filing::limit`, each with its key in [`config`] and its line in the README's Security
//!   section.
//!
//! Test scaffolding (the simulated disk, fault hooks, `serve --echo` and `--unsafe-no-fsync`)
//! exists only with the `testing` cargo feature, which tests and benches turn on.
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod exchange;
pub mod filing;
pub mod http2;
pub mod ids;
pub mod ingest;
pub mod load;
pub mod pb;
pub mod pki;
pub mod server;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod validate;
