//! What routing reads of a manifest (countries of first entry, of routing, of delivery, the
//! transport mode): kept in each filing's index entry, so that a lifecycle record is routed as
//! its filing's current version is. Read from a decoded manifest, or from its encoding alone
//! (the forwarder, which sends manifests on as they are stored).

use crate::pb::store::RouteFacts;
use crate::pb::{Location, Manifest};

fn country(location: Option<&Location>) -> Option<String> {
    let location = location?;
    if !location.country.is_empty() {
        Some(location.country.clone())
    } else {
        location.locode.get(..2).map(str::to_owned)
    }
}

/// What routing reads of a manifest (countries from the country field, else the UN/LOCODE).
pub fn route_facts(manifest: &Manifest) -> RouteFacts {
    let itinerary = manifest.itinerary.as_ref();
    facts(
        manifest.transport_mode,
        itinerary.and_then(|i| i.place_of_first_entry.as_ref()),
        itinerary.map_or(&[], |i| &i.countries_of_routing),
        manifest
            .consignments
            .iter()
            .map(|c| c.place_of_delivery.as_ref()),
    )
}

/// As [`route_facts`], from a manifest's encoding: only the fields routing reads are decoded
/// (prost skips the rest, goods items and parties, without allocating them).
pub fn route_facts_encoded(manifest: &[u8]) -> Result<RouteFacts, prost::DecodeError> {
    let routed = <RoutedManifest as prost::Message>::decode(manifest)?;
    let itinerary = routed.itinerary.as_ref();
    Ok(facts(
        routed.transport_mode,
        itinerary.and_then(|i| i.place_of_first_entry.as_ref()),
        itinerary.map_or(&[], |i| &i.countries_of_routing),
        routed
            .consignments
            .iter()
            .map(|c| c.place_of_delivery.as_ref()),
    ))
}

fn facts<'a>(
    transport_mode: i32,
    first_entry: Option<&Location>,
    routing_countries: &[String],
    delivery_places: impl Iterator<Item = Option<&'a Location>>,
) -> RouteFacts {
    let mut delivery_countries: Vec<String> = delivery_places.filter_map(country).collect();
    delivery_countries.sort();
    delivery_countries.dedup();
    RouteFacts {
        first_entry_country: country(first_entry).unwrap_or_default(),
        routing_countries: routing_countries.to_vec(),
        delivery_countries,
        transport_mode,
    }
}

/// The fields of a `Manifest` that routing reads, under its tags (a test holds them together).
#[derive(Clone, PartialEq, prost::Message)]
struct RoutedManifest {
    #[prost(enumeration = "crate::pb::TransportMode", tag = "3")]
    transport_mode: i32,
    #[prost(message, optional, tag = "9")]
    itinerary: Option<RoutedItinerary>,
    #[prost(message, repeated, tag = "10")]
    consignments: Vec<RoutedConsignment>,
}

/// The fields of an `Itinerary` that routing reads, under its tags.
#[derive(Clone, PartialEq, prost::Message)]
struct RoutedItinerary {
    #[prost(message, optional, tag = "2")]
    place_of_first_entry: Option<Location>,
    #[prost(string, repeated, tag = "4")]
    countries_of_routing: Vec<String>,
}

/// The field of a `Consignment` that routing reads, under its tag.
#[derive(Clone, PartialEq, prost::Message)]
struct RoutedConsignment {
    #[prost(message, optional, tag = "9")]
    place_of_delivery: Option<Location>,
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    /// Every sample, and one whose places are given by UN/LOCODE alone or not at all: the facts
    /// read from the encoding are those of the decoded manifest.
    #[test]
    fn the_facts_of_an_encoding_are_those_of_its_manifest() {
        let mut manifests: Vec<Manifest> = crate::pb::sample_manifests()
            .into_iter()
            .map(|(_, manifest)| manifest)
            .collect();
        // Two consignments: one delivered to a place given by UN/LOCODE alone, one to none.
        let mut by_locode = manifests[0].clone();
        let first = by_locode.consignments.first().cloned().unwrap_or_default();
        by_locode.consignments = vec![first.clone(), first];
        by_locode.consignments[0].place_of_delivery = None;
        by_locode.consignments[1].place_of_delivery = Some(Location {
            locode: "DEHAM".into(),
            ..Location::default()
        });
        if let Some(itinerary) = by_locode.itinerary.as_mut() {
            itinerary.place_of_first_entry = None;
        }
        manifests.push(by_locode);
        manifests.push(Manifest::default());
        for manifest in &manifests {
            let encoded = route_facts_encoded(&manifest.encode_to_vec()).expect("decodes");
            assert_eq!(encoded, route_facts(manifest), "{}", manifest.lrn);
        }
        let by_locode = route_facts(&manifests[manifests.len() - 2]);
        assert_eq!(by_locode.delivery_countries, ["DE"]);
        assert!(by_locode.first_entry_country.is_empty());
    }
}
