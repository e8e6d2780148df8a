//! Customs-to-Customs exchange: which administrations receive a filing ([`route`]).
//! (Per-peer forwarders, the peer API and notices build on this.)

pub mod route;
