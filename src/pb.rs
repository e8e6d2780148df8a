//! Generated protobuf types and services (`proto/`), the descriptor set, and proto3 JSON
//! conversion driven by it.
#![allow(clippy::all, missing_docs)]

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage};

/// Carrier-facing API and the cargo report (`aci.v1`).
pub mod aci {
    pub mod v1 {
        tonic::include_proto!("aci.v1");
    }
    /// The log record and index layouts (`aci.store.v1`).
    pub mod store {
        pub mod v1 {
            tonic::include_proto!("aci.store.v1");
        }
    }
}

pub use aci::store::v1 as store;
pub use aci::v1::*;

pub mod envelope;
pub mod wire;

pub use envelope::EncodedEnvelope;

/// The encoded `FileDescriptorSet` of every `.proto` in `proto/` (for reflection and JSON).
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/aci_descriptor.bin"));

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(DESCRIPTOR_SET).expect("the descriptor set built by build.rs decodes")
});

/// The `FileDescriptorSet` of one `.proto` file (e.g. `aci/v1/carrier.proto`) and the
/// files it imports, transitively: what a listener's reflection serves, so it shows its own
/// public contract and nothing else (not the storage layout of `aci.store.v1`).
pub fn descriptor_set_of(file: &str) -> prost_types::FileDescriptorSet {
    use prost::Message;
    let Ok(all) = prost_types::FileDescriptorSet::decode(DESCRIPTOR_SET) else {
        return prost_types::FileDescriptorSet::default();
    };
    let mut wanted = vec![file.to_owned()];
    let mut kept: Vec<prost_types::FileDescriptorProto> = Vec::new();
    while let Some(name) = wanted.pop() {
        if kept.iter().any(|f| f.name() == name) {
            continue;
        }
        if let Some(found) = all.file.iter().find(|f| f.name() == name) {
            wanted.extend(found.dependency.iter().cloned());
            kept.push(found.clone());
        }
    }
    prost_types::FileDescriptorSet { file: kept }
}

/// The descriptor pool of the wire contracts.
pub fn descriptor_pool() -> &'static DescriptorPool {
    &POOL
}

/// Why a proto3 JSON document could not be read as a message.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("message type {0} is not in the descriptor set")]
    UnknownType(String),
    #[error("invalid JSON for {type_name}: {source}")]
    Syntax {
        type_name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("JSON does not match {type_name}: {source}")]
    Shape {
        type_name: String,
        #[source]
        source: prost::DecodeError,
    },
}

/// Reads a message from its proto3 JSON form (field names as in the .proto or lowerCamelCase;
/// unknown fields refused).
pub fn from_json<T: prost::Message + Default + prost::Name>(json: &str) -> Result<T, JsonError> {
    let type_name = T::full_name();
    let descriptor = descriptor_pool()
        .get_message_by_name(&type_name)
        .ok_or_else(|| JsonError::UnknownType(type_name.clone()))?;
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let dynamic = DynamicMessage::deserialize(descriptor, &mut deserializer)
        .and_then(|message| deserializer.end().map(|()| message))
        .map_err(|source| JsonError::Syntax {
            type_name: type_name.clone(),
            source,
        })?;
    dynamic
        .transcode_to::<T>()
        .map_err(|source| JsonError::Shape { type_name, source })
}

/// A generated message as a dynamic one, for code that walks messages by their descriptors.
pub fn to_dynamic<T: prost::Message + prost::Name>(message: &T) -> DynamicMessage {
    let type_name = T::full_name();
    let descriptor = descriptor_pool()
        .get_message_by_name(&type_name)
        .expect("every generated message is in the descriptor set");
    let mut dynamic = DynamicMessage::new(descriptor);
    dynamic
        .transcode_from(message)
        .expect("a generated message transcodes to its own descriptor");
    dynamic
}

/// Writes a message in proto3 JSON form (field names as in the .proto, every field present,
/// so a reader sees `"warnings": []` rather than nothing).
pub fn to_json<T: prost::Message + prost::Name>(message: &T) -> serde_json::Value {
    let dynamic = to_dynamic(message);
    let options = prost_reflect::SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .expect("serializing to a JSON value cannot fail")
}

/// Every JSON sample of `schemas/examples` (not the invalid ones below it), by file name: for
/// tests that hold a function to its meaning over all of them.
#[cfg(test)]
pub(crate) fn sample_manifests() -> Vec<(String, Manifest)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/examples");
    let mut samples: Vec<(String, Manifest)> = std::fs::read_dir(&dir)
        .expect("the samples")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let name = path.display().to_string();
            let json = std::fs::read_to_string(&path).expect("a sample");
            let manifest = from_json(&json).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            (name, manifest)
        })
        .collect();
    samples.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        samples.len() >= 8,
        "a sample for every mode: {}",
        samples.len()
    );
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    /// build.rs boxes the manifest wherever a message holds one: held inline (2 KB), it made
    /// every future of the filing path that kept a request or a record kilobytes to move.
    #[test]
    fn messages_that_hold_a_manifest_hold_a_pointer() {
        let manifest = std::mem::size_of::<Manifest>();
        assert!(
            manifest > 1024,
            "the manifest itself is large: {manifest} bytes"
        );
        for (name, size) in [
            ("SubmitRequest", std::mem::size_of::<SubmitRequest>()),
            ("AmendRequest", std::mem::size_of::<AmendRequest>()),
            ("Envelope", std::mem::size_of::<Envelope>()),
            ("LogRecord", std::mem::size_of::<store::LogRecord>()),
        ] {
            // Holding one inline, it would be at least as large as the manifest.
            assert!(
                size < manifest,
                "{name} is {size} bytes: is its manifest inline?"
            );
        }
    }
}
