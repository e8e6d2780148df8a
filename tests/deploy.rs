//! deploy/: every YAML manifest parses and has the shape its tool expects, the gateway configs it
//! ships are valid configs, the image is multi-stage and non-root, the systemd unit is hardened.
//! Where a Docker engine and the compose plugin exist, `docker compose config` and `docker build`
//! run too; where they do not (as on these machines), the test says so and skips only that part.

use std::path::{Path, PathBuf};
use std::process::Command;

use aci_gateway::config::Config;
use yaml_rust2::{Yaml, YamlLoader};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn files(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("deploy dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files(&path, extensions));
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.contains(&e))
        {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn yaml(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).expect("read");
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_yaml_manifest_parses_and_kubernetes_objects_are_complete() {
    let manifests = files(&deploy(), &["yaml", "yml"]);
    assert!(manifests.len() >= 8, "{manifests:?}");
    for path in &manifests {
        let documents = yaml(path);
        assert!(!documents.is_empty(), "{} is empty", path.display());
        if path.parent().is_some_and(|p| p.ends_with("k8s")) {
            for document in &documents {
                for key in ["apiVersion", "kind"] {
                    assert!(
                        document[key].as_str().is_some(),
                        "{}: a document without {key}",
                        path.display()
                    );
                }
                if document["kind"].as_str() != Some("Kustomization") {
                    assert!(document["metadata"]["name"].as_str().is_some());
                }
            }
        }
    }
    // Everything the kustomization lists exists.
    let kustomization = &yaml(&deploy().join("k8s/kustomization.yaml"))[0];
    for resource in kustomization["resources"].as_vec().expect("resources") {
        let file = deploy()
            .join("k8s")
            .join(resource.as_str().expect("a file name"));
        assert!(file.is_file(), "{} is missing", file.display());
    }
}

#[test]
fn the_statefulset_probes_the_admin_port_and_keeps_data_on_a_volume() {
    let set = &yaml(&deploy().join("k8s/statefulset.yaml"))[0];
    assert_eq!(set["kind"].as_str(), Some("StatefulSet"));
    assert_eq!(
        set["spec"]["replicas"].as_i64(),
        Some(1),
        "one writer per log"
    );
    let pod = &set["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let container = &pod["containers"][0];
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_vec()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    assert!(mounts.contains(&"/var/lib/aci-gateway"), "{mounts:?}");
    assert!(mounts.contains(&"/etc/aci-gateway/tls"), "{mounts:?}");
    let claim = &set["spec"]["volumeClaimTemplates"][0];
    assert_eq!(claim["metadata"]["name"].as_str(), Some("data"));
    let services = yaml(&deploy().join("k8s/services.yaml"));
    let ports: Vec<i64> = services
        .iter()
        .flat_map(|s| s["spec"]["ports"].as_vec().cloned().unwrap_or_default())
        .filter_map(|p| p["port"].as_i64())
        .collect();
    assert_eq!(ports, [7443, 7444, 9464]);
}

#[test]
fn the_gateway_configs_shipped_in_deploy_are_valid() {
    let mut checked = 0;
    for path in files(&deploy(), &["toml"]) {
        let text = std::fs::read_to_string(&path).expect("read");
        Config::parse(&text, &path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        checked += 1;
    }
    let map = &yaml(&deploy().join("k8s/configmap.yaml"))[0];
    let embedded = map["data"]["gateway.toml"].as_str().expect("gateway.toml");
    let config = Config::parse(embedded, Path::new("/etc/aci-gateway/gateway.toml"))
        .unwrap_or_else(|e| panic!("the ConfigMap's gateway.toml: {e}"));
    assert!(config.telemetry.otlp_endpoint.is_some());
    assert_eq!(
        checked, 3,
        "the two compose gateways and the cluster's replicas"
    );
}

#[test]
fn the_cluster_runs_replicas_on_three_synced_jetstream_nodes() {
    // Compose: three NATS nodes with one config that syncs every write, two replicas sharing
    // one gateway config whose log is the stream, and a load balancer in front of them.
    let compose = &yaml(&deploy().join("cluster/docker-compose.yml"))[0];
    let services = &compose["services"];
    for name in [
        "nats-1",
        "nats-2",
        "nats-3",
        "gateway-1",
        "gateway-2",
        "gateway",
    ] {
        assert!(!services[name].is_badvalue(), "service {name}");
    }
    let nats = std::fs::read_to_string(deploy().join("cluster/nats.conf")).expect("nats.conf");
    assert!(nats.contains("sync_interval: always"), "{nats}");
    let config_path = deploy().join("cluster/gateway.toml");
    let config = Config::load(&config_path).expect("the replicas' config");
    let jetstream = config.store.jetstream.expect("the log on JetStream");
    assert_eq!(jetstream.replicas, 3);
    assert_eq!(jetstream.servers.len(), 3);
    let haproxy = std::fs::read_to_string(deploy().join("cluster/haproxy.cfg")).expect("haproxy");
    assert!(haproxy.contains("gateway-1:7443") && haproxy.contains("gateway-2:7443"));

    // Kubernetes: the NATS project's chart, three JetStream servers syncing every write; the
    // base's StatefulSet with two replicas on different nodes; the config on the stream.
    let kustomization = &yaml(&deploy().join("k8s/cluster/kustomization.yaml"))[0];
    let chart = &kustomization["helmCharts"][0];
    assert_eq!(chart["name"].as_str(), Some("nats"));
    assert_eq!(
        chart["repo"].as_str(),
        Some("https://nats-io.github.io/k8s/helm/charts/")
    );
    let values = &yaml(&deploy().join("k8s/cluster/nats-values.yaml"))[0];
    assert_eq!(values["config"]["cluster"]["replicas"].as_i64(), Some(3));
    assert_eq!(
        values["config"]["jetstream"]["merge"]["sync_interval"].as_str(),
        Some("always")
    );
    let replicas = &yaml(&deploy().join("k8s/cluster/replicas.yaml"))[0];
    assert_eq!(replicas["spec"]["replicas"].as_i64(), Some(2));
    let map = &yaml(&deploy().join("k8s/cluster/configmap.yaml"))[0];
    let embedded = map["data"]["gateway.toml"].as_str().expect("gateway.toml");
    let config = Config::parse(embedded, Path::new("/etc/aci-gateway/gateway.toml"))
        .unwrap_or_else(|e| panic!("the cluster ConfigMap's gateway.toml: {e}"));
    assert!(config.store.jetstream.is_some());
    for patch in kustomization["patches"].as_vec().expect("patches") {
        let file = deploy()
            .join("k8s/cluster")
            .join(patch["path"].as_str().expect("a patch file"));
        assert!(file.is_file(), "{} is missing", file.display());
    }
}

#[test]
fn compose_runs_two_gateways_a_collector_jaeger_prometheus_grafana_and_a_carrier() {
    let compose = &yaml(&deploy().join("docker-compose.yml"))[0];
    let services = compose["services"].as_hash().expect("services");
    for name in [
        "gateway-a",
        "gateway-b",
        "otel-collector",
        "jaeger",
        "prometheus",
        "grafana",
        "carrier",
        "pki",
    ] {
        assert!(
            services.contains_key(&Yaml::String(name.into())),
            "no {name} service"
        );
    }
    // Every file or folder the services mount from deploy/ exists.
    for (_, service) in services {
        for volume in service["volumes"].as_vec().cloned().unwrap_or_default() {
            let Some(spec) = volume.as_str() else {
                continue;
            };
            if let Some(local) = spec.strip_prefix("./") {
                let file = local.split(':').next().expect("a path");
                assert!(deploy().join(file).exists(), "{spec}: missing");
            }
        }
    }
    let docker_compose = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if docker_compose {
        let config = Command::new("docker")
            .args(["compose", "-f"])
            .arg(deploy().join("docker-compose.yml"))
            .args(["config", "--quiet"])
            .output()
            .expect("docker compose config");
        assert!(
            config.status.success(),
            "{}",
            String::from_utf8_lossy(&config.stderr)
        );
    } else {
        eprintln!(
            "skipped `docker compose config`: the docker compose plugin is not installed here"
        );
    }
}

#[test]
fn the_image_is_multi_stage_non_root_with_a_data_volume() {
    let dockerfile = std::fs::read_to_string(deploy().join("Dockerfile")).expect("Dockerfile");
    let stages = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert!(stages >= 2, "multi-stage build");
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "runs as {user}"
    );
    assert!(dockerfile.contains("VOLUME [\"/var/lib/aci-gateway\"]"));
    let engine = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if engine {
        let built = Command::new("docker")
            .args([
                "build",
                "-f",
                "deploy/Dockerfile",
                "-t",
                "aci-gateway:test",
                ".",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("docker build");
        assert!(built.success(), "the image builds");
    } else {
        eprintln!("skipped `docker build`: no Docker engine runs here (only the client)");
    }
}

#[test]
fn the_systemd_unit_is_hardened() {
    let unit = std::fs::read_to_string(deploy().join("aci-gateway.service")).expect("unit");
    for setting in [
        "User=aci-gateway",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "ReadWritePaths=/var/lib/aci-gateway",
        "RestartPreventExitStatus=64",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == setting),
            "missing {setting}"
        );
    }
}

/// The compose demo's carrier, run as compose runs it (`/bin/sh -c` with its command, `$$`
/// unescaped) against a stub `aci-gateway` that writes down its arguments: one `submit` per
/// sample, each with its client certificate, key and CA on the same call.
#[test]
fn the_compose_carrier_files_every_sample_with_its_certificate() {
    let compose = &yaml(&deploy().join("docker-compose.yml"))[0];
    let carrier = &compose["services"]["carrier"];
    assert_eq!(carrier["entrypoint"][0].as_str(), Some("/bin/sh"));
    assert_eq!(carrier["entrypoint"][1].as_str(), Some("-c"));
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/examples");
    let command = carrier["command"][0]
        .as_str()
        .expect("the carrier's command")
        .replace("$$", "$")
        .replace(
            "/usr/share/aci-gateway/examples",
            examples.to_str().expect("path"),
        );
    let dir = tempfile::tempdir().expect("tempdir");
    let calls = dir.path().join("calls");
    let stub = dir.path().join("aci-gateway");
    std::fs::write(
        &stub,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n", calls.display()),
    )
    .expect("stub");
    std::fs::set_permissions(
        &stub,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .expect("chmod");
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = Command::new("/bin/sh")
        .args(["-c", &command])
        .env("PATH", path)
        .output()
        .expect("sh");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let calls = std::fs::read_to_string(&calls).expect("the stub was called");
    let samples = files(&examples, &["json"])
        .into_iter()
        .filter(|f| f.parent() == Some(examples.as_path()))
        .count();
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines.len(), samples, "one call per sample: {calls}");
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words.first(), Some(&"submit"), "{line}");
        for flag in ["--ca", "--cert", "--key", "--endpoint"] {
            assert!(words.contains(&flag), "{flag} missing from: {line}");
        }
    }
}

/// promtool (Debian's `prometheus` package; .ci/run installs it) accepts the alerting rules and
/// their unit tests pass.
#[test]
fn the_alerting_rules_check_and_their_tests_pass() {
    let rules = deploy().join("prometheus");
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts.test.yml"],
    ] {
        let output = Command::new("promtool")
            .args(&args)
            .current_dir(&rules)
            .output()
            .unwrap_or_else(|e| {
                panic!("promtool is needed (Debian: apt-get install prometheus; .ci/run installs it): {e}")
            });
        assert!(
            output.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
