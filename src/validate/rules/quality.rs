//! Data quality: generic goods descriptions, and "To Order" consignees without a notify party.

use super::Context;

pub(super) fn check(cx: &mut Context<'_>) {
    generic_descriptions(cx);
    to_order(cx);
}

/// Whether a description is one of the generic ones (whole, or followed only by punctuation,
/// digits or a few more words as in "said to contain 40 cartons").
pub fn is_generic(description: &str, deny_list: &[String]) -> bool {
    let normal: String = description
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let normal = normal.split_whitespace().collect::<Vec<_>>().join(" ");
    deny_list.iter().any(|generic| {
        normal == *generic
            || normal
                .strip_prefix(generic.as_str())
                .is_some_and(|rest| rest.starts_with(' ') && generic.contains(' '))
    })
}

fn generic_descriptions(cx: &mut Context<'_>) {
    let mut found = Vec::new();
    for (i, c) in cx.manifest.consignments.iter().enumerate() {
        for (j, item) in c.goods_items.iter().enumerate() {
            if is_generic(&item.description, &cx.settings.generic_descriptions) {
                found.push((
                    format!("consignments[{i}].goods_items[{j}].description"),
                    item.description.clone(),
                ));
            }
        }
    }
    let severity = cx.settings.generic_description_severity;
    for (path, description) in found {
        cx.report_as(
            "quality.generic_description",
            severity,
            &path,
            &description,
            "describe the goods precisely enough to identify them (a generic description is refused)",
        );
    }
}

fn to_order(cx: &mut Context<'_>) {
    let mut found = Vec::new();
    for (i, c) in cx.manifest.consignments.iter().enumerate() {
        let to_order = c.consignee.as_ref().is_some_and(|p| {
            let name = p.name.to_lowercase();
            name.trim() == "to order"
                || name.starts_with("to order of")
                || name.starts_with("to the order of")
        });
        let notify = c
            .notify_party
            .as_ref()
            .is_some_and(|p| !p.name.is_empty() || !p.eori.is_empty());
        if to_order && !notify {
            found.push(format!("consignments[{i}].notify_party"));
        }
    }
    for path in found {
        cx.report(
            "quality.to_order_notify",
            &path,
            "",
            "a consignee \"To Order\" needs a notify party",
        );
    }
}
