//! Data quality: generic goods descriptions, and "To Order" consignees without a notify party.

use super::Context;

pub(super) fn check(cx: &mut Context<'_>) {
    generic_descriptions(cx);
    to_order(cx);
}

/// Whether a description is one of the generic ones (whole, or followed only by punctuation,
/// digits or a few more words as in "said to contain 40 cartons").
pub fn is_generic(description: &str, deny_list: &[String]) -> bool {
    let normal = normal_words(description);
    deny_list.iter().any(|generic| {
        normal == *generic
            || normal
                .strip_prefix(generic.as_str())
                .is_some_and(|rest| rest.starts_with(' ') && generic.contains(' '))
    })
}

/// A description in lower case, its words (runs of letters and digits) joined by single spaces.
fn normal_words(description: &str) -> String {
    // Lower-cased whole, not char by char, where that differs (a final sigma).
    let lower = if description.is_ascii() {
        std::borrow::Cow::Borrowed(description)
    } else {
        std::borrow::Cow::Owned(description.to_lowercase())
    };
    let mut normal = String::with_capacity(lower.len());
    for word in lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
    {
        if !normal.is_empty() {
            normal.push(' ');
        }
        normal.extend(word.chars().map(|c| c.to_ascii_lowercase()));
    }
    normal
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

/// Whether a consignee's name makes the consignment "to order" (case aside).
fn is_to_order(name: &str) -> bool {
    let starts_with = |prefix: &str| {
        name.get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
    };
    name.trim().eq_ignore_ascii_case("to order")
        || starts_with("to order of")
        || starts_with("to the order of")
}

fn to_order(cx: &mut Context<'_>) {
    let mut found = Vec::new();
    for (i, c) in cx.manifest.consignments.iter().enumerate() {
        let to_order = c.consignee.as_ref().is_some_and(|p| is_to_order(&p.name));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of a description as first written: lower-cased whole, everything but letters
    /// and digits a space, whitespace collapsed (four allocations; `normal_words` makes one).
    fn reference_words(description: &str) -> String {
        let spaced: String = description
            .to_lowercase()
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { ' ' })
            .collect();
        spaced.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn normal_words_are_the_reference_ones() {
        for description in [
            "",
            "   ",
            "Said To Contain 40 CARTONS",
            "  general cargo.  ",
            "FAK -- freight all kinds!",
            "Bicycles, 20\" wheels",
            "ΟΔΟΣ ΣΟΦΙΑΣ",
            "Straße\tund\u{a0}Weg",
            "İstanbul KELVIN \u{212a}",
            "tab\tnew\nline",
        ] {
            assert_eq!(
                normal_words(description),
                reference_words(description),
                "{description:?}"
            );
        }
    }

    #[test]
    fn to_order_names_are_found_whatever_their_case() {
        for name in [
            "To Order",
            " to order ",
            "TO ORDER OF BANK",
            "To the order of X",
        ] {
            assert!(is_to_order(name), "{name:?}");
        }
        for name in ["Toorder Ltd", "Tordre", "", "To orders", "À l'ordre"] {
            assert!(!is_to_order(name), "{name:?}");
        }
    }
}
