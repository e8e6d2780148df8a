//! Every rule, through the public validation path: one case that breaks it (asserting code, rule
//! id and path) and one that keeps it. Times are fixed, so deadlines are deterministic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aci_gateway::pb::{self, Manifest};
use aci_gateway::validate::rules::{RULES, RuleSettings};
use aci_gateway::validate::{Severity, Validator};

/// 2026-11-20T00:00:00Z: before every sample's deadline.
fn early() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_132_800)
}

fn sample(name: &str) -> Manifest {
    let json = match name {
        "sea" => include_str!("../schemas/examples/sea-f10.json"),
        "air" => include_str!("../schemas/examples/air-f23.json"),
        "air-pre-loading" => include_str!("../schemas/examples/air-f21.json"),
        "road" => include_str!("../schemas/examples/road-f50.json"),
        "postal" => include_str!("../schemas/examples/postal-f45.json"),
        other => panic!("no sample {other}"),
    };
    pb::from_json(json).expect("sample parses")
}

fn item(m: &mut Manifest) -> &mut pb::GoodsItem {
    &mut m.consignments[0].goods_items[0]
}

/// The declarant's telephone (its first communication in the samples).
fn phone(m: &mut Manifest) -> &mut pb::Communication {
    let communication = &mut m.declarant.as_mut().expect("declarant").communications[0];
    assert_eq!(communication.r#type, "TE");
    communication
}

fn packaging(m: &mut Manifest) -> &mut pb::Packaging {
    &mut item(m).packagings[0]
}

fn declarant_address(m: &mut Manifest) -> &mut pb::Address {
    let declarant = m.declarant.as_mut().expect("declarant");
    declarant.address.as_mut().expect("address")
}

fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

fn seconds(ts: &Option<prost_types::Timestamp>) -> i64 {
    ts.expect("timestamp").seconds
}

type Mutation = fn(&mut Manifest);

/// (rule, sample, breaking change, expected code, expected path, keeping change)
const CASES: &[(&str, &str, Mutation, &str, &str, Mutation)] = &[
    (
        "dataset.required",
        "sea",
        |m| m.filing_type = "F15".into(),
        "13",
        "consignments[0].master_document",
        |m| {
            m.filing_type = "F15".into();
            m.consignments[0].master_document = Some(pb::TransportDocument {
                r#type: "N704".into(),
                number: "MBL-1".into(),
            });
        },
    ),
    (
        "dataset.not_allowed",
        "sea",
        |m| {
            m.consignments[0].master_document = Some(pb::TransportDocument {
                r#type: "N704".into(),
                number: "MBL-1".into(),
            })
        },
        "15",
        "consignments[0].master_document",
        |m| m.filing_type = "F11".into(),
    ),
    (
        "field.required",
        "sea",
        |m| m.lrn.clear(),
        "13",
        "lrn",
        |m| m.lrn = "X".into(),
    ),
    (
        "field.items",
        "sea",
        |m| m.consignments.clear(),
        "13",
        "consignments",
        |_| {},
    ),
    (
        "field.length",
        "sea",
        |m| m.lrn = "L".repeat(23),
        "12",
        "lrn",
        |m| m.lrn = "L".repeat(22),
    ),
    (
        "field.pattern",
        "sea",
        |m| item(m).hs_code = "82041".into(),
        "12",
        "consignments[0].goods_items[0].hs_code",
        |m| item(m).hs_code = "8204110000".into(),
    ),
    (
        "field.code_list",
        "sea",
        |m| packaging(m).package_type = "XX".into(),
        "12",
        "consignments[0].goods_items[0].packagings[0].package_type",
        |m| packaging(m).package_type = "BX".into(),
    ),
    (
        "field.range",
        "sea",
        |m| m.consignments[0].sequence = 0,
        "12",
        "consignments[0].sequence",
        |m| m.consignments[0].sequence = 9999,
    ),
    (
        "field.fraction_digits",
        "sea",
        |m| item(m).gross_mass_kg = 3600.5000001,
        "12",
        "consignments[0].goods_items[0].gross_mass_kg",
        |m| item(m).gross_mass_kg = 3600.500001,
    ),
    (
        "ids.container_check_digit",
        "sea",
        |m| m.transport_equipment[0].container_number = "CSQU3054384".into(),
        "12",
        "transport_equipment[0].container_number",
        |_| {},
    ),
    (
        "ids.imo_check_digit",
        "sea",
        |m| m.conveyance.as_mut().expect("c").imo_number = "8814274".into(),
        "12",
        "conveyance.imo_number",
        |m| m.conveyance.as_mut().expect("c").imo_number = "8814275".into(),
    ),
    (
        "ids.awb_check_digit",
        "air",
        |m| {
            m.consignments[0]
                .master_document
                .as_mut()
                .expect("d")
                .number = "123-12345674".into()
        },
        "12",
        "consignments[0].master_document.number",
        |m| {
            m.consignments[0]
                .master_document
                .as_mut()
                .expect("d")
                .number = "12312345675".into()
        },
    ),
    (
        "ids.locode_country",
        "sea",
        |m| {
            m.itinerary
                .as_mut()
                .expect("i")
                .place_of_loading
                .as_mut()
                .expect("p")
                .locode = "QQSHA".into()
        },
        "12",
        "itinerary.place_of_loading.locode",
        |_| {},
    ),
    (
        "ids.eori_country",
        "sea",
        |m| m.carrier.as_mut().expect("c").eori = "GB12345".into(),
        "12",
        "carrier.eori",
        |m| m.carrier.as_mut().expect("c").eori = "GB123456789000123".into(),
    ),
    (
        "ids.related_mrn",
        "sea",
        |m| m.related_mrn = "26GB00000000000011".into(),
        "12",
        "related_mrn",
        |m| m.related_mrn = "26GB00000000000010".into(),
    ),
    (
        "ids.hs_chapter",
        "sea",
        |m| item(m).hs_code = "770000".into(),
        "12",
        "consignments[0].goods_items[0].hs_code",
        |m| item(m).hs_code = "970000".into(),
    ),
    (
        "presence.filer",
        "sea",
        |m| m.declarant.as_mut().expect("d").eori.clear(),
        "13",
        "declarant.eori",
        |_| {},
    ),
    (
        "presence.filing_type_mode",
        "sea",
        |m| m.filing_type = "F23".into(),
        "14",
        "filing_type",
        |m| m.filing_type = "F11".into(),
    ),
    (
        "presence.conveyance",
        "road",
        |m| {
            m.conveyance
                .as_mut()
                .expect("c")
                .vehicle_registration
                .clear()
        },
        "13",
        "conveyance.vehicle_registration",
        |_| {},
    ),
    (
        "presence.placi",
        "air",
        |m| {
            m.filing_type = "F20".into();
            m.consignments[0].master_document = None;
        },
        "13",
        "consignments[0].master_document.number",
        |m| m.filing_type = "F20".into(),
    ),
    (
        "presence.next_filing_party",
        "sea",
        |m| m.filing_type = "F12".into(),
        "13",
        "next_filing_party.eori",
        |m| {
            m.filing_type = "F12".into();
            m.next_filing_party = Some(pb::Party {
                eori: "NL812345678".into(),
                ..Default::default()
            });
        },
    ),
    (
        "presence.postcode_or_po_box",
        "sea",
        |m| declarant_address(m).postcode.clear(),
        "13",
        "declarant.address.postcode",
        |m| {
            let address = declarant_address(m);
            address.postcode.clear();
            address.po_box = "PO Box 12".into();
        },
    ),
    (
        // Kept another way: a country whose addresses have no postcodes.
        "presence.postcode_or_po_box",
        "sea",
        |m| declarant_address(m).postcode.clear(),
        "13",
        "declarant.address.postcode",
        |m| {
            let address = declarant_address(m);
            address.postcode.clear();
            address.country = "QA".into();
        },
    ),
    (
        "presence.phone_e123",
        "sea",
        |m| phone(m).identifier = "01394 604500".into(),
        "12",
        "declarant.communications[0].identifier",
        |m| phone(m).identifier = "+441394604500".into(),
    ),
    (
        "presence.package_count",
        "sea",
        |m| {
            packaging(m).number_of_packages = 0;
            m.totals.as_mut().expect("t").number_of_packages = 120;
        },
        "13",
        "consignments[0].goods_items[0].packagings[0].number_of_packages",
        |_| {},
    ),
    (
        "presence.bulk_package_count",
        "sea",
        |m| packaging(m).package_type = "VR".into(),
        "15",
        "consignments[0].goods_items[0].packagings[0].number_of_packages",
        |m| {
            packaging(m).package_type = "VR".into();
            packaging(m).number_of_packages = 0;
            m.totals.as_mut().expect("t").number_of_packages = 120;
        },
    ),
    (
        "cross.total_packages",
        "sea",
        |m| m.totals.as_mut().expect("t").number_of_packages = 1,
        "14",
        "totals.number_of_packages",
        |_| {},
    ),
    (
        "cross.total_gross_mass",
        "sea",
        |m| m.totals.as_mut().expect("t").gross_mass_kg = 4000.0,
        "14",
        "totals.gross_mass_kg",
        |m| m.totals.as_mut().expect("t").gross_mass_kg = 5060.0,
    ),
    (
        "cross.total_consignments",
        "sea",
        |m| m.totals.as_mut().expect("t").number_of_consignments = 2,
        "14",
        "totals.number_of_consignments",
        |_| {},
    ),
    (
        "cross.equipment_goods_item",
        "sea",
        |m| m.transport_equipment[0].goods_items[1].goods_item = 9,
        "14",
        "transport_equipment[0].goods_items[1]",
        |_| {},
    ),
    (
        "cross.duplicate_document",
        "sea",
        |m| {
            let mut second = m.consignments[0].clone();
            second.sequence = 2;
            m.consignments.push(second);
        },
        "81",
        "consignments[1].transport_document.number",
        |m| {
            let mut second = m.consignments[0].clone();
            second.sequence = 2;
            second.transport_document.as_mut().expect("d").number = "NSCL2026SHA0002".into();
            m.consignments.push(second);
        },
    ),
    (
        "cross.departure_before_arrival",
        "sea",
        |m| {
            let itinerary = m.itinerary.as_mut().expect("i");
            itinerary.estimated_departure = ts(seconds(&itinerary.estimated_arrival) + 60);
        },
        "14",
        "itinerary.estimated_departure",
        |_| {},
    ),
    (
        "cross.routing_includes_loading",
        "sea",
        |m| {
            m.itinerary
                .as_mut()
                .expect("i")
                .countries_of_routing
                .retain(|c| c != "CN")
        },
        "14",
        "itinerary.countries_of_routing",
        |_| {},
    ),
    (
        "cross.routing_includes_delivery",
        "sea",
        |m| m.consignments[0].countries_of_routing.retain(|c| c != "NL"),
        "14",
        "consignments[0].place_of_delivery",
        // The means of transport's routing need not reach the place of delivery.
        |m| {
            m.itinerary
                .as_mut()
                .expect("i")
                .countries_of_routing
                .retain(|c| c != "NL" && c != "GB")
        },
    ),
    (
        "cross.routing_includes_acceptance",
        "sea",
        |m| m.consignments[0].countries_of_routing.retain(|c| c != "CN"),
        "14",
        "consignments[0].place_of_acceptance",
        |_| {},
    ),
    (
        "cross.container_indicator",
        "sea",
        |m| m.consignments[0].container_indicator = "0".into(),
        "14",
        "consignments[0].container_indicator",
        |m| {
            m.consignments[0].container_indicator = "0".into();
            m.transport_equipment.clear();
        },
    ),
    (
        "cross.container_indicator",
        "sea",
        |m| {
            for r in &mut m.transport_equipment[0].goods_items {
                r.consignment = 2;
            }
        },
        "14",
        "consignments[0].container_indicator",
        // Equipment that lists no goods may hold anyone's.
        |m| m.transport_equipment[0].goods_items.clear(),
    ),
    (
        "presence.passive_means_mode",
        "air",
        |m| {
            m.consignments[0].passive_means.push(pb::PassiveMeans {
                identification: "ULD-AKE12345".into(),
                type_of_identification: "31".into(),
                nationality: String::new(),
            })
        },
        "15",
        "consignments[0].passive_means",
        // A road filing carries its trailer.
        |m| {
            m.transport_mode = pb::TransportMode::Road as i32;
            m.consignments[0].passive_means.push(pb::PassiveMeans {
                identification: "OX-12-NL".into(),
                type_of_identification: "31".into(),
                nationality: "NL".into(),
            })
        },
    ),
    (
        "ids.receptacle_offices",
        "postal",
        |m| m.consignments[0].receptacle_ids[0].replace_range(..2, "QQ"),
        "12",
        "consignments[0].receptacle_ids[0]",
        |_| {},
    ),
    (
        "quality.generic_description",
        "sea",
        |m| item(m).description = "Said to contain 40 cartons".into(),
        "14",
        "consignments[0].goods_items[0].description",
        |m| item(m).description = "Spare parts for marine diesel engines".into(),
    ),
    (
        "quality.to_order_notify",
        "sea",
        |m| m.consignments[0].consignee.as_mut().expect("c").name = "To Order".into(),
        "13",
        "consignments[0].notify_party",
        |m| {
            m.consignments[0].consignee.as_mut().expect("c").name = "To Order".into();
            m.consignments[0].notify_party = Some(pb::Party {
                name: "Holland Tool Import BV".into(),
                ..Default::default()
            });
        },
    ),
];

#[test]
fn every_rule_breaks_and_keeps_as_documented() {
    let validator = Validator::standard();
    let mut covered = std::collections::HashSet::new();
    for &(rule, sample_name, breaking, code, path, keeping) in CASES {
        let registered = RULES.iter().find(|r| r.id == rule);
        assert!(registered.is_some(), "{rule} is not in the registry");
        covered.insert(rule);

        let mut broken = sample(sample_name);
        breaking(&mut broken);
        let report = validator.check(&broken, early());
        let found: Vec<_> = report
            .findings()
            .iter()
            .filter(|f| f.rule == rule)
            .collect();
        assert!(
            found
                .iter()
                .any(|f| f.code.as_str() == code && f.path == path),
            "{rule}: expected code {code} at {path}, found {:#?}",
            report.findings()
        );

        let mut kept = sample(sample_name);
        keeping(&mut kept);
        let report = validator.check(&kept, early());
        assert!(
            report.findings().iter().all(|f| f.rule != rule),
            "{rule}: the keeping case still reports {:#?}",
            report.findings()
        );
    }
    // The deadline and store rules have tests of their own below and in tests/carrier_api.rs.
    let elsewhere = ["deadline.late_filing", "store.duplicate_master_document"];
    for rule in RULES {
        assert!(
            covered.contains(rule.id) || elsewhere.contains(&rule.id),
            "{} has no case",
            rule.id
        );
    }
}

fn late_findings(validator: &Validator, m: &Manifest, now: SystemTime) -> Vec<(Severity, String)> {
    validator
        .check(m, now)
        .findings()
        .iter()
        .filter(|f| f.rule == "deadline.late_filing")
        .map(|f| (f.severity, f.path.clone()))
        .collect()
}

fn at(ts: &Option<prost_types::Timestamp>, offset_hours: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs((seconds(ts) as f64 + offset_hours * 3600.0) as u64)
}

/// A sea filing loaded in Norway: short sea, due 2 h before arrival.
fn short_sea() -> Manifest {
    let mut m = sample("sea");
    let itinerary = m.itinerary.as_mut().expect("i");
    itinerary.place_of_loading.as_mut().expect("loading").locode = "NOOSL".into();
    m
}

/// An air filing on a 2 h flight: shorter than the 4 h lead time, so due at departure.
fn short_haul() -> Manifest {
    let mut m = sample("air");
    let itinerary = m.itinerary.as_mut().expect("i");
    itinerary.estimated_departure = ts(seconds(&itinerary.estimated_arrival) - 2 * 3600);
    m
}

#[test]
fn deadlines_per_mode() {
    let validator = Validator::standard();
    // Sea, containerised: 24 h before departure.
    let sea = sample("sea");
    let departure = &sea.itinerary.as_ref().expect("i").estimated_departure;
    assert!(late_findings(validator, &sea, at(departure, -24.5)).is_empty());
    assert_eq!(
        late_findings(validator, &sea, at(departure, -23.5)),
        [(
            Severity::Warning,
            "itinerary.estimated_departure".to_owned()
        )]
    );
    // Sea, bulk (declared not in containers, no equipment): 4 h before arrival.
    let mut bulk = sample("sea");
    bulk.consignments[0].container_indicator = "0".into();
    bulk.transport_equipment.clear();
    let arrival = &bulk.itinerary.as_ref().expect("i").estimated_arrival;
    assert!(late_findings(validator, &bulk, at(arrival, -4.5)).is_empty());
    assert_eq!(
        late_findings(validator, &bulk, at(arrival, -3.5)),
        [(Severity::Warning, "itinerary.estimated_arrival".to_owned())]
    );
    // Sea from a short-sea loading country (Norway): 2 h before arrival, containerised or not,
    // although its departure was weeks before.
    let short_sea = short_sea();
    let arrival = short_sea.itinerary.as_ref().expect("i").estimated_arrival;
    assert!(late_findings(validator, &short_sea, at(&arrival, -2.5)).is_empty());
    assert_eq!(
        late_findings(validator, &short_sea, at(&arrival, -1.5)),
        [(Severity::Warning, "itinerary.estimated_arrival".to_owned())]
    );
    // Air, long haul (12.5 h flight): 4 h before arrival.
    let air = sample("air");
    let arrival = &air.itinerary.as_ref().expect("i").estimated_arrival;
    assert!(late_findings(validator, &air, at(arrival, -4.5)).is_empty());
    assert_eq!(late_findings(validator, &air, at(arrival, -3.5)).len(), 1);
    // Air, short haul (2 h flight): due at departure.
    let short = short_haul();
    let departure = short.itinerary.as_ref().expect("i").estimated_departure;
    assert!(late_findings(validator, &short, at(&departure, -0.1)).is_empty());
    assert_eq!(
        late_findings(validator, &short, at(&departure, 0.1)),
        [(
            Severity::Warning,
            "itinerary.estimated_departure".to_owned()
        )]
    );
    // Road: 1 h before arrival.
    let road = sample("road");
    let arrival = &road.itinerary.as_ref().expect("i").estimated_arrival;
    assert!(late_findings(validator, &road, at(arrival, -1.5)).is_empty());
    assert_eq!(late_findings(validator, &road, at(arrival, -0.5)).len(), 1);
}

/// The late filing's message names the deadline it missed (written only for a finding).
#[test]
fn a_late_filing_says_which_deadline_it_missed() {
    let validator = Validator::standard();
    let reason = |m: &Manifest, now: SystemTime| -> String {
        let report = validator.check(m, now);
        let late: Vec<_> = report
            .findings()
            .iter()
            .filter(|f| f.rule == "deadline.late_filing")
            .map(|f| f.message.clone())
            .collect();
        assert_eq!(late.len(), 1, "one late filing finding: {late:?}");
        // "filed …h…m after the deadline <RFC 3339 time> (<rule>)"
        let rule = late[0]
            .split_once("deadline ")
            .and_then(|(_, rest)| rest.split_once(" ("))
            .and_then(|(_, rule)| rule.strip_suffix(')'))
            .expect("the rule in brackets after the deadline");
        rule.to_owned()
    };
    let sea = sample("sea");
    let departure = sea.itinerary.as_ref().expect("i").estimated_departure;
    assert_eq!(reason(&sea, at(&departure, -23.5)), "24 h before departure");

    let short_sea = short_sea();
    let arrival = short_sea.itinerary.as_ref().expect("i").estimated_arrival;
    assert_eq!(
        reason(&short_sea, at(&arrival, -1.5)),
        "short sea, 2 h before arrival"
    );

    let air = sample("air");
    let arrival = air.itinerary.as_ref().expect("i").estimated_arrival;
    assert_eq!(reason(&air, at(&arrival, -3.5)), "4 h before arrival");

    let short = short_haul();
    let departure = short.itinerary.as_ref().expect("i").estimated_departure;
    assert_eq!(
        reason(&short, at(&departure, 0.1)),
        "at departure (flight shorter than the lead time)"
    );

    // F21 is a pre-loading type: due at departure, whatever the flight's length.
    let pre_loading = sample("air-pre-loading");
    let departure = pre_loading
        .itinerary
        .as_ref()
        .expect("i")
        .estimated_departure;
    assert_eq!(reason(&pre_loading, at(&departure, 0.1)), "before loading");
}

#[test]
fn configured_severities_apply() {
    let strict = Validator::new(RuleSettings {
        late_filing_severity: Severity::Error,
        imo_severity: Severity::Warning,
        ..RuleSettings::default()
    })
    .expect("validator");
    let road = sample("road");
    let arrival = &road.itinerary.as_ref().expect("i").estimated_arrival;
    let late = at(arrival, -0.5);
    assert_eq!(
        late_findings(&strict, &road, late),
        [(Severity::Error, "itinerary.estimated_arrival".to_owned())]
    );
    assert!(
        strict.validate(road, late).is_err(),
        "late is an error when configured"
    );

    let mut ship = sample("sea");
    ship.conveyance.as_mut().expect("c").imo_number = "8814274".into();
    let accepted = strict
        .validate(ship, early())
        .expect("IMO is only a warning");
    assert_eq!(accepted.warnings.len(), 1);
    assert_eq!(accepted.warnings[0].rule, "ids.imo_check_digit");
    assert_eq!(accepted.warnings[0].severity, Severity::Warning);
}

#[test]
fn the_rules_table_in_schemas_is_current() {
    let generated = aci_gateway::validate::rules::markdown();
    let committed = include_str!("../schemas/RULES.md");
    assert!(
        committed == generated,
        "schemas/RULES.md is stale: run `cargo run -- rules > schemas/RULES.md`"
    );
}

/// Inland waterway files with the sea types (ICS2 has no inland type of its own); a road type
/// for an inland waterway filing names the modes it is for.
#[test]
fn inland_waterway_files_with_the_sea_types() {
    let validator = aci_gateway::validate::Validator::new(Default::default()).expect("validator");
    let now = std::time::SystemTime::now();
    let inland: aci_gateway::pb::Manifest =
        aci_gateway::pb::from_json(include_str!("../schemas/examples/inland-f10.json"))
            .expect("sample");
    assert!(!validator.check(&inland, now).has_errors());
    let mut road_type = inland.clone();
    road_type.filing_type = "F50".into();
    let report = validator.check(&road_type, now);
    let finding = report
        .findings()
        .iter()
        .find(|f| f.rule == "presence.filing_type_mode")
        .expect("the filing type does not fit the mode");
    assert!(finding.message.contains("road"), "{}", finding.message);
}
