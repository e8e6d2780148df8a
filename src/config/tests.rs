//! The shipped configs, and what a bad one is told.

use super::*;
use crate::validate::Severity;

const DEV: &str = include_str!("../../config/gateway.toml");
const PRODUCTION: &str = include_str!("../../config/production.toml");

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/aci/gateway.toml"))
}

#[test]
fn shipped_configs_are_valid() {
    let dev = parse(DEV).expect("dev config");
    assert_eq!(dev.carrier_api.listen.port(), 7443);
    assert_eq!(dev.data_dir, Path::new("/etc/aci/../var/data"));
    assert!(dev.tls.dev_pki.is_some());
    let production = parse(PRODUCTION).expect("production config");
    assert!(production.tls.dev_pki.is_none());
    // The production example spells out the defaults.
    let defaults = RuleSettings::default();
    assert_eq!(production.validation.deadlines, defaults.deadlines);
    assert_eq!(
        production.validation.mass_tolerance,
        defaults.mass_tolerance
    );
    assert_eq!(
        production.duplicate_document_window,
        std::time::Duration::from_secs(365 * 86_400)
    );
    assert_eq!(
        production.lifecycle.immutable,
        crate::store::Immutable::default()
    );
    assert_eq!(
        production.carrier_api.limits,
        crate::http2::ListenerLimits::default()
    );
    assert_eq!(
        production.peer_limits.max_connection_age,
        std::time::Duration::from_secs(86_400)
    );
    // Limits are on in both shipped configs.
    for config in [&dev, &production] {
        let limits = config.carrier_api.per_carrier;
        assert!(limits.writes.is_some() && limits.reads.is_some());
        assert!(limits.in_flight.is_some());
    }
    let no_streams = DEV.replace(
        "max_message_bytes = 4194304",
        "max_message_bytes = 4194304\nmax_concurrent_streams = 0",
    );
    let message = parse(&no_streams).expect_err("0 streams").to_string();
    assert!(message.contains("max_concurrent_streams"), "{message}");
    let unknown = DEV.replace(
        "max_message_bytes = 4194304",
        "max_message_bytes = 4194304\nmax_streams = 5",
    );
    assert!(parse(&unknown).is_err(), "unknown keys are refused");
    let relaxed = format!("{DEV}\n[lifecycle]\nimmutable_fields = [\"master_documents\"]\n");
    assert!(
        !parse(&relaxed)
            .expect("valid")
            .lifecycle
            .immutable
            .transport_mode
    );
    let wrong = format!("{DEV}\n[lifecycle]\nimmutable_fields = [\"colour\"]\n");
    let message = parse(&wrong).expect_err("unknown field").to_string();
    assert!(message.contains("lifecycle.immutable_fields"), "{message}");
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    let text = DEV.replace("[gateway]", "[gateway]\ncolour = \"blue\"");
    let message = parse(&text).expect_err("unknown key").to_string();
    assert!(message.contains("gateway.toml"), "{message}");
    assert!(message.contains("colour"), "{message}");
}

#[test]
fn peers_and_routes_are_checked() {
    let peers = "\n[[peers]]\nid = \"NL-1\"\nendpoint = \"https://nl.example:7444\"\n";
    let route =
        "\n[[routes]]\npeer = \"NL-1\"\nfirst_entry_countries = [\"NL\"]\nmodes = [\"sea\"]\n";
    let config = parse(&format!("{DEV}{peers}{route}")).expect("valid");
    assert_eq!(config.peers[0].id, "NL-1");
    assert_eq!(
        config.routes.routes[0].modes,
        [crate::pb::TransportMode::Sea]
    );
    for (bad, key) in [
        (route.replace("NL-1", "XX-9"), "routes.peer"),
        (route.replace("[\"NL\"]", "[\"QQ\"]"), "routes"),
        (route.replace("\"sea\"", "\"boat\""), "routes.modes"),
        ("\n[[routes]]\npeer = \"NL-1\"\n".to_owned(), "routes"),
    ] {
        let message = parse(&format!("{DEV}{peers}{bad}"))
            .expect_err(key)
            .to_string();
        assert!(message.contains(&format!("key `{key}`")), "{message}");
    }
    let bad_endpoint = peers.replace("https://nl.example:7444", "nl.example");
    let message = parse(&format!("{DEV}{bad_endpoint}"))
        .expect_err("endpoint")
        .to_string();
    assert!(message.contains("peers.endpoint"), "{message}");
}

#[test]
fn rule_settings_are_checked() {
    let text = format!("{DEV}\n[validation]\nlate_filing = \"fatal\"\n");
    let message = parse(&text).expect_err("bad severity").to_string();
    assert!(message.contains("validation.late_filing"), "{message}");
    let text =
        format!("{DEV}\n[validation.deadlines]\nroad = {{ before = \"lunch\", hours = 1 }}\n");
    let message = parse(&text).expect_err("bad deadline").to_string();
    assert!(message.contains("validation.deadlines.road"), "{message}");
    let text = format!("{DEV}\n[validation]\nlate_filing = \"error\"\n");
    let config = parse(&text).expect("valid");
    assert_eq!(config.validation.late_filing_severity, Severity::Error);
    let text = format!("{DEV}\n[validation.deadlines]\nshort_sea_countries = [\"NO\", \"XX\"]\n");
    let message = parse(&text).expect_err("bad country").to_string();
    assert!(
        message.contains("validation.deadlines.short_sea_countries") && message.contains("XX"),
        "{message}"
    );
    let text = format!("{DEV}\n[validation.deadlines]\nshort_sea_countries = [\"NO\"]\n");
    let config = parse(&text).expect("valid");
    assert_eq!(config.validation.deadlines.short_sea_countries, ["NO"]);
}

#[test]
fn bad_values_name_file_and_key() {
    let text = DEV.replace("country = \"GB\"", "country = \"gbr\"");
    let message = parse(&text).expect_err("bad country").to_string();
    assert!(
        message.contains("/etc/aci/gateway.toml: key `gateway.country`"),
        "{message}"
    );
    let text = DEV.replace("127.0.0.1:7443", "localhost");
    let message = parse(&text).expect_err("bad address").to_string();
    assert!(message.contains("carrier_api.listen"), "{message}");
}
