//! What routing reads of a manifest (countries of first entry, of routing, of delivery, the
//! transport mode): kept in each filing's index entry, so that a lifecycle record is routed as
//! its filing's current version is.

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
    let mut delivery_countries: Vec<String> = manifest
        .consignments
        .iter()
        .filter_map(|c| country(c.place_of_delivery.as_ref()))
        .collect();
    delivery_countries.sort();
    delivery_countries.dedup();
    RouteFacts {
        first_entry_country: itinerary
            .and_then(|i| country(i.place_of_first_entry.as_ref()))
            .unwrap_or_default(),
        routing_countries: itinerary
            .map(|i| i.countries_of_routing.clone())
            .unwrap_or_default(),
        delivery_countries,
        transport_mode: manifest.transport_mode,
    }
}
