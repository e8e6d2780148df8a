//! `pb::wire`'s verdict on arbitrary bytes as a manifest held by an envelope (what a receiver
//! stores without decoding) against prost decoding them: the same, always, and never a panic.
#![no_main]

use aci_gateway::pb::{Envelope, wire};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let checked = wire::manifest().check_field_value(data).is_ok();
    let mut envelope = Vec::new();
    prost::encoding::bytes::encode(8, &data.to_vec(), &mut envelope);
    let decoded = Envelope::decode(envelope.as_slice()).is_ok();
    assert_eq!(checked, decoded, "pb::wire and prost disagree");
});
