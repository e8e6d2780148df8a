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
}

fn totals(cx: &mut Context<'_>) {
    let Some(totals) = cx.manifest.totals else {
        return;
    };
    let items = cx.manifest.consignments.iter().flat_map(|c| &c.goods_items);
    let packages: u64 = items.clone().map(|i| u64::from(i.number_of_packages)).sum();
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
            && !seen.insert((document.r#type.clone(), document.number.clone()))
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

fn country_of(location: &Option<crate::pb::Location>) -> Option<String> {
    let location = location.as_ref()?;
    if !location.country.is_empty() {
        Some(location.country.clone())
    } else if location.locode.len() == 5 {
        location.locode.get(..2).map(str::to_owned)
    } else {
        None
    }
}

fn routing(cx: &mut Context<'_>) {
    let Some(itinerary) = &cx.manifest.itinerary else {
        return;
    };
    let routing = &itinerary.countries_of_routing;
    if routing.is_empty() {
        return;
    }
    let mut findings = Vec::new();
    if let Some(loading) = country_of(&itinerary.place_of_loading)
        && !routing.contains(&loading)
    {
        findings.push((
            "cross.routing_includes_loading",
            "itinerary.countries_of_routing".to_owned(),
            loading,
        ));
    }
    for (i, consignment) in cx.manifest.consignments.iter().enumerate() {
        if let Some(delivery) = country_of(&consignment.place_of_delivery)
            && !routing.contains(&delivery)
        {
            findings.push((
                "cross.routing_includes_delivery",
                format!("consignments[{i}].place_of_delivery"),
                delivery,
            ));
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
