//! Routing rules: which peer administrations receive a filing. Pure: rules and a manifest in,
//! peers out; evaluated when a forwarder reads a record, so a rule change applies from then on.
//!
//! A rule names a peer and criteria: countries of first entry, countries of routing, countries
//! of delivery, transport modes. A filing matches a rule when it meets every criterion the rule
//! gives (any listed value of each). A rule gives at least one criterion: sending everything to
//! a peer is said by listing every mode.

use std::collections::BTreeSet;

use crate::pb::TransportMode;
use crate::pb::store::RouteFacts;
/// What routing reads of a manifest: the store keeps it in each filing's index entry.
pub use crate::store::route_facts as facts_of;

/// One routing rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub peer: String,
    pub first_entry_countries: Vec<String>,
    pub routing_countries: Vec<String>,
    pub delivery_countries: Vec<String>,
    pub modes: Vec<TransportMode>,
}

/// Every rule, in configuration order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    pub routes: Vec<Route>,
}

impl Routes {
    /// The peers that receive a filing with these facts.
    pub fn peers_for(&self, facts: &RouteFacts) -> BTreeSet<String> {
        self.routes
            .iter()
            .filter(|route| route.matches(facts))
            .map(|route| route.peer.clone())
            .collect()
    }

    /// Whether `peer` receives a filing with these facts.
    pub fn sends_to(&self, peer: &str, facts: &RouteFacts) -> bool {
        self.routes
            .iter()
            .any(|route| route.peer == peer && route.matches(facts))
    }
}

fn any_of<'a>(wanted: &[String], mut actual: impl Iterator<Item = &'a String>) -> bool {
    wanted.is_empty() || actual.any(|country| wanted.contains(country))
}

impl Route {
    pub fn matches(&self, facts: &RouteFacts) -> bool {
        let first_entry = Some(&facts.first_entry_country).filter(|c| !c.is_empty());
        let mode =
            TransportMode::try_from(facts.transport_mode).unwrap_or(TransportMode::Unspecified);
        any_of(&self.first_entry_countries, first_entry.into_iter())
            && any_of(&self.routing_countries, facts.routing_countries.iter())
            && any_of(&self.delivery_countries, facts.delivery_countries.iter())
            && (self.modes.is_empty() || self.modes.contains(&mode))
    }
}

/// Reads a mode as configuration names it ("sea", "air", "road", "rail", "postal", "express",
/// "inland_waterway").
pub fn mode_by_name(name: &str) -> Option<TransportMode> {
    Some(match name {
        "sea" => TransportMode::Sea,
        "air" => TransportMode::Air,
        "road" => TransportMode::Road,
        "rail" => TransportMode::Rail,
        "postal" => TransportMode::Postal,
        "express" => TransportMode::Express,
        "inland_waterway" => TransportMode::InlandWaterway,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{Location, Manifest};

    fn sample(json: &str) -> Manifest {
        crate::pb::from_json(json).expect("sample")
    }

    fn route(peer: &str) -> Route {
        Route {
            peer: peer.into(),
            first_entry_countries: Vec::new(),
            routing_countries: Vec::new(),
            delivery_countries: Vec::new(),
            modes: Vec::new(),
        }
    }

    #[test]
    fn each_criterion_selects_and_they_combine() {
        let sea = sample(include_str!("../../schemas/examples/sea-f10.json")); // first entry NL, via CN SG NL GB
        let air = sample(include_str!("../../schemas/examples/air-f23.json")); // first entry GB, via HK GB
        let routes = Routes {
            routes: vec![
                Route {
                    first_entry_countries: vec!["NL".into()],
                    ..route("NL-1")
                },
                Route {
                    routing_countries: vec!["SG".into()],
                    ..route("SG-1")
                },
                Route {
                    routing_countries: vec!["GB".into()],
                    modes: vec![TransportMode::Air],
                    ..route("GB-AIR")
                },
                Route {
                    delivery_countries: vec!["NL".into()],
                    ..route("NL-DELIVERY")
                },
                Route {
                    first_entry_countries: vec!["FR".into()],
                    ..route("FR-1")
                },
            ],
        };
        let to = |m: &Manifest| {
            routes
                .peers_for(&facts_of(m))
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(to(&sea), ["NL-1", "NL-DELIVERY", "SG-1"]);
        assert_eq!(to(&air), ["GB-AIR"]);
    }

    #[test]
    fn no_rule_no_peer_and_countries_come_from_locodes() {
        let mut sea = sample(include_str!("../../schemas/examples/sea-f10.json"));
        assert!(Routes::default().peers_for(&facts_of(&sea)).is_empty());
        let only_de = Routes {
            routes: vec![Route {
                first_entry_countries: vec!["DE".into()],
                ..route("DE-1")
            }],
        };
        assert!(only_de.peers_for(&facts_of(&sea)).is_empty());
        sea.itinerary
            .as_mut()
            .expect("itinerary")
            .place_of_first_entry = Some(Location {
            locode: "DEHAM".into(),
            ..Default::default()
        });
        assert_eq!(
            only_de
                .peers_for(&facts_of(&sea))
                .into_iter()
                .collect::<Vec<_>>(),
            ["DE-1"]
        );
    }
}
