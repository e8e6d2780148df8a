//! # aci-gateway
//!
//! An advance cargo information gateway in the spirit of the WCO SAFE Framework: carriers file
//! pre-arrival manifests over mutual-TLS gRPC; each filing is validated, made durable in an
//! append-only log, and answered with a receipt (MRN) or every violation at once.
//!
//! ## Data flow
//!
//! ```text
//! carrier ──mTLS gRPC──► ingest ─► filing ─► validate ─► store (decide, log, index) ─► receipt
//!    ▲                                │          │                  │
//!    │                                ◄── coded violations          └─► forwarder per peer ──► peer
//!    └── notifications ◄── filing ◄── store ◄── exchange::inbound ◄── peer API ◄──mTLS── peer
//! ```
//!
//! ## Layout
//!
//! - [`cli`]: the `aci-gateway` commands (`serve`, `submit`, `status`, `peers`, `notify`, ...),
//!   one file per group; `cli::run` only dispatches. `demo` (two gateways end to end in one
//!   process) and `load` (the load generator) are commands there, not library API.
//! - [`config`]: the TOML configuration, checked and sealed.
//! - [`server`]: wires store, listeners and admin port; one shutdown path.
//! - [`admin`]: the admin port (`/healthz`, `/readyz`, `/metrics`, `/peers`) on hyper, and
//!   its client.
//! - [`filing`]: the filing service: the carrier use-cases (file, amend, invalidate, arrive,
//!   status, the notification feed, answer a referral), who may do them, per-carrier limits, the
//!   validation pool. No gRPC in it: it returns a [`filing::FilingError`].
//! - [`ingest`]: the carrier API, a thin gRPC adapter over [`filing`].
//! - [`exchange`]: Customs-to-Customs exchange: routing, per-peer forwarders, what peers ask of
//!   this gateway (`exchange::inbound`: deliveries, pull feeds, risk notices) with its thin gRPC
//!   adapter (`exchange::service`), and each peer's progress.
//! - [`status`]: the one mapping from outcomes ([`filing::FilingError`],
//!   `exchange::inbound::ExchangeError`, store failures) to gRPC statuses, for both listeners.
//! - [`validate`]: findings and reports; required data and identifier formats.
//! - [`store`]: the writer's group-commit loop, the decisions it applies (`store::decide`, pure
//!   functions over a [`store::StateView`]), the log behind [`store::LogBackend`] (the embedded
//!   segment log: framing, CRC, hash chain; or a NATS JetStream stream shared by replicas,
//!   `store::jetstream`), the index (per-filing maps on disk, `store::table` and
//!   `store::positions`, small sled trees, and the checkpoint of its mark, `store::checkpoint`)
//!   and the filing projection, the risk state notices make of a filing and its items
//!   (`store::risk`), and the scheduler that fires the filings' timers once (`store::scheduler`).
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
//! - What a filing type requires or does not allow: a row (or a cell) of `schemas/datasets.tsv`,
//!   checked by the constraint walk; the rules table shows it.
//! - A business rule: a check in the fitting file of `validate/rules/`, registered in
//!   `validate::rules::RULES` (id, code, default severity, what it checks); `aci-gateway rules`
//!   regenerates `schemas/RULES.md`, which a test keeps current.
//! - A carrier RPC: the method in `proto/aci/v1/carrier.proto`, its use-case in [`filing`]
//!   (new refusals as [`filing::FilingError`] variants, mapped in [`status`]), and a few lines in
//!   `ingest` that call it.
//! - A notice kind or a timer: the kind in `exchange.proto` / the store's `TimerKind`, what it
//!   does to a filing in `store::projection` (and `store::risk`), when it applies in
//!   `store::decide`, what the carrier is told in `projection::pushed`.
//! - A log backend: an implementation of [`store::LogBackend`] (its doc is the contract: order,
//!   sealing, what durable means, torn tails, cursors, the durable head, several writers),
//!   chosen in `Store::open` from `[store] backend`; the decisions of `store::decide` work over
//!   it unchanged.
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
pub mod exchange;
pub mod filing;
pub mod http2;
pub mod ids;
pub mod ingest;
pub mod pb;
pub mod pki;
pub mod server;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod validate;
