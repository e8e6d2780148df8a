//! Filing deadlines per transport mode, against the gateway's clock.
//!
//! Defaults follow the EU rules (Reg. 2015/2446 Art. 105-108), which the US rules match where both
//! exist: sea containerised 24 h before loading (departure), sea bulk 4 h before arrival, short
//! sea 2 h before arrival, air 4 h before arrival or at departure for flights under 4 h (and
//! before loading for pre-loading filings), road 1 h and rail 2 h before arrival.
//!
//! Short sea is recognised by the country of the place of loading, from a configurable list
//! ([`Deadlines::short_sea_countries`]), not by a flag the filer declares: the place of loading
//! is in every sea filing and checked against the voyage, while a declared flag would let a
//! filer choose the later deadline for itself.

use std::fmt;
use std::time::{Duration, SystemTime};

use super::Context;
use super::cross::time;
use crate::pb::TransportMode;

const HOUR: Duration = Duration::from_secs(3600);

/// When a filing is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// This long before the (estimated) departure from the place of loading.
    BeforeDeparture(Duration),
    /// This long before the (estimated) arrival at the place of first entry.
    BeforeArrival(Duration),
}

/// The deadline of each mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deadlines {
    pub sea_containerised: Deadline,
    pub sea_bulk: Deadline,
    /// Air, express and postal (carried by air); flights shorter than the lead time are due at
    /// departure.
    pub air: Deadline,
    pub road: Deadline,
    pub rail: Deadline,
    pub inland_waterway: Deadline,
    /// Sea voyages from a short-sea loading country, containerised or bulk.
    pub short_sea: Deadline,
    /// Countries (ISO 3166 alpha-2) whose ports are short-sea loading places.
    pub short_sea_countries: Vec<String>,
}

/// Short-sea loading countries by default: the EU's list (Reg. 2015/2446 Art. 106(1)(c):
/// Greenland, the Faroe Islands, Ceuta and Melilla, Norway, Iceland, Morocco, and ports on the
/// Baltic, North, Black and Mediterranean seas), as the countries outside the Union with such
/// ports. A whole country stands for its ports, so an administration narrows or widens it in
/// `[validation.deadlines] short_sea_countries`.
pub const SHORT_SEA_COUNTRIES: &[&str] = &[
    "GL", "FO", "NO", "IS", "MA", "GB", "GI", "RU", "UA", "GE", "TR", "AL", "ME", "BA", "SY", "LB",
    "IL", "PS", "EG", "LY", "TN", "DZ",
];

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            sea_containerised: Deadline::BeforeDeparture(24 * HOUR),
            sea_bulk: Deadline::BeforeArrival(4 * HOUR),
            air: Deadline::BeforeArrival(4 * HOUR),
            road: Deadline::BeforeArrival(HOUR),
            rail: Deadline::BeforeArrival(2 * HOUR),
            inland_waterway: Deadline::BeforeArrival(2 * HOUR),
            short_sea: Deadline::BeforeArrival(2 * HOUR),
            short_sea_countries: SHORT_SEA_COUNTRIES
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
        }
    }
}

/// How a filing's deadline was chosen: written out only in a late filing's finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Basis {
    /// This many hours before the departure, or the arrival; `short_sea`: by the short-sea rule.
    Lead {
        hours: u64,
        arrival: bool,
        short_sea: bool,
    },
    /// A pre-loading filing: due at departure.
    BeforeLoading,
    /// A flight shorter than the lead time: due at departure.
    ShortFlight,
}

impl fmt::Display for Basis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Basis::Lead {
                hours,
                arrival,
                short_sea,
            } => {
                if short_sea {
                    f.write_str("short sea, ")?;
                }
                let event = if arrival { "arrival" } else { "departure" };
                write!(f, "{hours} h before {event}")
            }
            Basis::BeforeLoading => f.write_str("before loading"),
            Basis::ShortFlight => f.write_str("at departure (flight shorter than the lead time)"),
        }
    }
}

/// The moment a filing is due, with the field it derives from and how it was chosen.
pub(super) fn due(cx: &Context<'_>) -> Option<(SystemTime, &'static str, Basis)> {
    let itinerary = cx.manifest.itinerary.as_ref()?;
    let departure = time(&itinerary.estimated_departure);
    let arrival = time(&itinerary.estimated_arrival);
    let mode = TransportMode::try_from(cx.manifest.transport_mode).ok()?;
    let deadlines = &cx.settings.deadlines;
    let loading_country = itinerary
        .place_of_loading
        .as_ref()
        .and_then(|place| place.locode.get(..2));
    let short_sea = loading_country.is_some_and(|country| {
        deadlines
            .short_sea_countries
            .iter()
            .any(|listed| listed == country)
    });
    let rule = match mode {
        TransportMode::Sea if short_sea => {
            let (at, path, mut basis) = apply(deadlines.short_sea, departure, arrival)?;
            if let Basis::Lead { short_sea, .. } = &mut basis {
                *short_sea = true;
            }
            return Some((at, path, basis));
        }
        TransportMode::Sea if is_bulk(cx.manifest) => deadlines.sea_bulk,
        TransportMode::Sea => deadlines.sea_containerised,
        TransportMode::Air | TransportMode::Express | TransportMode::Postal => {
            let pre_loading = cx
                .codes
                .list(crate::validate::codes::FILING_TYPES)
                .column(&cx.manifest.filing_type, 2)
                == Some("pre-loading");
            let Deadline::BeforeArrival(lead) = deadlines.air else {
                return apply(deadlines.air, departure, arrival);
            };
            let short_haul = matches!((departure, arrival), (Some(d), Some(a)) if a.duration_since(d).is_ok_and(|flight| flight < lead));
            if pre_loading || short_haul {
                let basis = if pre_loading {
                    Basis::BeforeLoading
                } else {
                    Basis::ShortFlight
                };
                return departure.map(|d| (d, "itinerary.estimated_departure", basis));
            }
            deadlines.air
        }
        TransportMode::Road => deadlines.road,
        TransportMode::Rail => deadlines.rail,
        TransportMode::InlandWaterway => deadlines.inland_waterway,
        TransportMode::Unspecified => return None,
    };
    apply(rule, departure, arrival)
}

fn apply(
    rule: Deadline,
    departure: Option<SystemTime>,
    arrival: Option<SystemTime>,
) -> Option<(SystemTime, &'static str, Basis)> {
    match rule {
        Deadline::BeforeDeparture(lead) => departure.and_then(|d| d.checked_sub(lead)).map(|t| {
            (
                t,
                "itinerary.estimated_departure",
                Basis::Lead {
                    hours: lead.as_secs() / 3600,
                    arrival: false,
                    short_sea: false,
                },
            )
        }),
        Deadline::BeforeArrival(lead) => arrival.and_then(|a| a.checked_sub(lead)).map(|t| {
            (
                t,
                "itinerary.estimated_arrival",
                Basis::Lead {
                    hours: lead.as_secs() / 3600,
                    arrival: true,
                    short_sea: false,
                },
            )
        }),
    }
}

pub(super) fn check(cx: &mut Context<'_>) {
    let Some((deadline, path, rule)) = due(cx) else {
        return;
    };
    let Ok(late_by) = cx.now.duration_since(deadline) else {
        return;
    };
    if late_by.is_zero() {
        return;
    }
    let when = time::OffsetDateTime::from(deadline)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let minutes = late_by.as_secs() / 60;
    let severity = cx.settings.late_filing_severity;
    cx.report_as(
        "deadline.late_filing",
        severity,
        path,
        &when,
        &format!(
            "filed {}h{:02}m after the deadline {when} ({rule})",
            minutes / 60,
            minutes % 60
        ),
    );
}

/// Bulk or break bulk: every consignment declared not in containers (container indicator 0); any
/// declared in containers makes the filing containerised. Where some consignment declares
/// nothing (version 1 filings), the filing is bulk when it lists no equipment, as before.
fn is_bulk(manifest: &crate::pb::Manifest) -> bool {
    let indicators = manifest
        .consignments
        .iter()
        .map(|c| c.container_indicator.as_str());
    if indicators.clone().any(|i| i == "1") {
        false
    } else if !manifest.consignments.is_empty() && indicators.clone().all(|i| i == "0") {
        true
    } else {
        manifest.transport_equipment.is_empty()
    }
}
