//! Cross-field consistency: totals, equipment assignments, unique documents, times, routing.

use std::collections::HashSet;
use std::time::SystemTime;

use super::Context;

pub(super) fn check(cx: &mut Context<'_>) {
    totals(cx);
    equipment_goods_items(cx);
    unique_documents(cx);
    departure_before_arrival(cx);
    routing(cx);
    container_indicator(cx);
}

/// A consignment declared in containers has its goods in equipment (some equipment lists them,
/// or equipment lists no goods at all); one declared not in containers has none of its goods
/// items in equipment.
fn container_indicator(cx: &mut Context<'_>) {
    let equipment = &cx.manifest.transport_equipment;
    let carries = |sequence: u32| {
        equipment
            .iter()
            .flat_map(|e| &e.goods_items)
            .any(|r| r.consignment == sequence)
    };
    let unassigned = equipment.iter().any(|e| e.goods_items.is_empty());
    let mut findings = Vec::new();
    for (i, consignment) in cx.manifest.consignments.iter().enumerate() {
        match consignment.container_indicator.as_str() {
            "1" if !unassigned && !carries(consignment.sequence) => findings.push((
                i,
                "1",
                "the consignment is declared in containers, but no transport equipment carries its goods",
            )),
            "0" if carries(consignment.sequence) => {
                findings.push((
                    i,
                    "0",
                    "the consignment is declared not in containers, but equipment carries its goods items",
                ))
            }
            _ => {}
        }
    }
    for (i, value, message) in findings {
        let path = format!("consignments[{i}].container_indicator");
        cx.report("cross.container_indicator", &path, value, message);
    }
}

fn totals(cx: &mut Context<'_>) {
    let Some(totals) = cx.manifest.totals else {
        return;
    };
    let items = cx.manifest.consignments.iter().flat_map(|c| &c.goods_items);
    let packages: u64 = items
        .clone()
        .flat_map(|i| &i.packagings)
        .map(|p| u64::from(p.number_of_packages))
        .sum();
    let mass: f64 = items.map(|i| i.gross_mass_kg).sum();
    if u64::from(totals.number_of_packages) != packages {
        cx.report(
            "cross.total_packages",
            "totals.number_of_packages",
            &totals.number_of_packages.to_string(),
            &format!("the goods items have {packages} packages in all"),
        );
    }
    let tolerance = cx.settings.mass_tolerance * mass.abs().max(1.0);
    if (totals.gross_mass_kg - mass).abs() > tolerance {
        cx.report(
            "cross.total_gross_mass",
            "totals.gross_mass_kg",
            &totals.gross_mass_kg.to_string(),
            &format!(
                "the goods items weigh {mass} kg in all (tolerance {} %)",
                cx.settings.mass_tolerance * 100.0
            ),
        );
    }
    let consignments = cx.manifest.consignments.len();
    if totals.number_of_consignments != 0 && totals.number_of_consignments as usize != consignments
    {
        cx.report(
            "cross.total_consignments",
            "totals.number_of_consignments",
            &totals.number_of_consignments.to_string(),
            &format!("the filing has {consignments} consignments"),
        );
    }
}

fn equipment_goods_items(cx: &mut Context<'_>) {
    let existing: HashSet<(u32, u32)> = cx
        .manifest
        .consignments
        .iter()
        .flat_map(|c| c.goods_items.iter().map(move |i| (c.sequence, i.sequence)))
        .collect();
    let mut unknown = Vec::new();
    for (e, equipment) in cx.manifest.transport_equipment.iter().enumerate() {
        for (r, reference) in equipment.goods_items.iter().enumerate() {
            if !existing.contains(&(reference.consignment, reference.goods_item)) {
                unknown.push((
                    format!("transport_equipment[{e}].goods_items[{r}]"),
                    format!("{}/{}", reference.consignment, reference.goods_item),
                ));
            }
        }
    }
    for (path, value) in unknown {
        cx.report(
            "cross.equipment_goods_item",
            &path,
            &value,
            "no goods item with this consignment and item sequence is in the filing",
        );
    }
}

fn unique_documents(cx: &mut Context<'_>) {
    let mut seen = HashSet::new();
    let mut repeats = Vec::new();
    for (i, consignment) in cx.manifest.consignments.iter().enumerate() {
        if let Some(document) = &consignment.transport_document
            && !document.number.is_empty()
            && !seen.insert((document.r#type.as_str(), document.number.as_str()))
        {
            repeats.push((
                format!("consignments[{i}].transport_document.number"),
                document.number.clone(),
            ));
        }
    }
    for (path, number) in repeats {
        cx.report(
            "cross.duplicate_document",
            &path,
            &number,
            "another consignment of this filing has the same transport document",
        );
    }
}

pub(super) fn time(ts: &Option<prost_types::Timestamp>) -> Option<SystemTime> {
    ts.and_then(|t| SystemTime::try_from(t).ok())
}

fn departure_before_arrival(cx: &mut Context<'_>) {
    let Some(itinerary) = &cx.manifest.itinerary else {
        return;
    };
    if let (Some(departure), Some(arrival)) = (
        time(&itinerary.estimated_departure),
        time(&itinerary.estimated_arrival),
    ) && departure >= arrival
    {
        cx.report(
            "cross.departure_before_arrival",
            "itinerary.estimated_departure",
            "",
            "the estimated departure is not before the estimated arrival",
        );
    }
}

fn country_of(location: &Option<crate::pb::Location>) -> Option<&str> {
    let location = location.as_ref()?;
    if !location.country.is_empty() {
        Some(&location.country)
    } else if location.locode.len() == 5 {
        location.locode.get(..2)
    } else {
        None
    }
}

/// Whether `countries` holds `country`.
fn holds(countries: &[String], country: &str) -> bool {
    countries.iter().any(|c| c == country)
}

/// The means of transport's routing includes the country of loading; each consignment's routing
/// includes its countries of acceptance and delivery. A consignment without a routing of its own
/// (version 1 filings) is held to the means' routing for its delivery country.
fn routing(cx: &mut Context<'_>) {
    let Some(itinerary) = &cx.manifest.itinerary else {
        return;
    };
    let means = &itinerary.countries_of_routing;
    let mut findings = Vec::new();
    if let Some(loading) = country_of(&itinerary.place_of_loading)
        && !means.is_empty()
        && !holds(means, loading)
    {
        findings.push((
            "cross.routing_includes_loading",
            "itinerary.countries_of_routing".to_owned(),
            loading.to_owned(),
        ));
    }
    for (i, consignment) in cx.manifest.consignments.iter().enumerate() {
        let own = &consignment.countries_of_routing;
        let (routing, places) = if own.is_empty() {
            (
                means,
                [
                    None,
                    Some((
                        "cross.routing_includes_delivery",
                        &consignment.place_of_delivery,
                        "place_of_delivery",
                    )),
                ],
            )
        } else {
            (
                own,
                [
                    Some((
                        "cross.routing_includes_acceptance",
                        &consignment.place_of_acceptance,
                        "place_of_acceptance",
                    )),
                    Some((
                        "cross.routing_includes_delivery",
                        &consignment.place_of_delivery,
                        "place_of_delivery",
                    )),
                ],
            )
        };
        if routing.is_empty() {
            continue;
        }
        for (rule, place, name) in places.into_iter().flatten() {
            if let Some(country) = country_of(place)
                && !holds(routing, country)
            {
                findings.push((
                    rule,
                    format!("consignments[{i}].{name}"),
                    country.to_owned(),
                ));
            }
        }
    }
    for (rule, path, country) in findings {
        cx.report(
            rule,
            &path,
            &country,
            &format!("{country} is missing from the countries of routing"),
        );
    }
}
