//! Requests a hostile client can put on the wire but our client API cannot: a filing whose
//! manifest is arbitrary bytes.

/// A `SubmitRequest` whose manifest is raw bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawSubmit {
    #[prost(bytes = "vec", tag = "1")]
    pub manifest: Vec<u8>,
}

/// Sends `manifest` as a filing's bytes; returns how the gateway refused it.
pub async fn submit_raw(channel: tonic::transport::Channel, manifest: Vec<u8>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    if let Err(e) = grpc.ready().await {
        return tonic::Status::unavailable(e.to_string());
    }
    match grpc
        .unary(
            tonic::Request::new(RawSubmit { manifest }),
            http::uri::PathAndQuery::from_static("/aci.v1.CarrierGateway/Submit"),
            tonic_prost::ProstCodec::<RawSubmit, aci_gateway::pb::Receipt>::default(),
        )
        .await
    {
        Ok(receipt) => panic!("raw bytes were accepted: {receipt:?}"),
        Err(status) => status,
    }
}

/// An unknown field 100 opened as a group `depth` times, then closed.
pub fn nested_groups(depth: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..depth {
        bytes.extend_from_slice(&[0xa3, 0x06]); // (100 << 3) | 3: start group
    }
    for _ in 0..depth {
        bytes.extend_from_slice(&[0xa4, 0x06]); // (100 << 3) | 4: end group
    }
    bytes
}
