//! The deployment examples in deploy/ (docs/deployment.md): what can be checked here without a
//! cluster or a Collector binary. The YAML parses; every component a Collector pipeline names
//! is defined (what the Collector checks first at start-up); the DaemonSet captures on the
//! host's network with no capability beyond the four it needs; and every tapspan flag the
//! systemd unit and the DaemonSet pass is one `tapspan live` takes (with `--features live`, as
//! CI runs this file; a build without it has no `live` to ask).

mod common;

use serde_yaml::Value;

fn text(rel: &str) -> String {
    std::fs::read_to_string(common::repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_yaml::from_str(&text(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn names(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Every receiver, processor and exporter a pipeline names is defined; returns the exporters
/// of the traces pipeline.
fn check_pipelines(rel: &str) -> Vec<String> {
    let config = yaml(rel);
    let pipelines = config["service"]["pipelines"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{rel}: no service.pipelines"));
    assert!(!pipelines.is_empty(), "{rel}");
    for (name, pipeline) in pipelines {
        for kind in ["receivers", "processors", "exporters"] {
            for component in names(&pipeline[kind]) {
                assert!(
                    config[kind].get(&component).is_some(),
                    "{rel}: pipeline {name:?} names {kind} {component:?}, which is not defined"
                );
            }
        }
        assert!(!names(&pipeline["receivers"]).is_empty(), "{rel}: {name:?}");
        assert!(!names(&pipeline["exporters"]).is_empty(), "{rel}: {name:?}");
    }
    names(&config["service"]["pipelines"]["traces"]["exporters"])
}

#[test]
fn the_gateway_routes_spans_by_trace_id_to_the_samplers() {
    let exporters = check_pipelines("deploy/collector-gateway.yaml");
    assert_eq!(exporters, ["loadbalancing"]);
    let config = yaml("deploy/collector-gateway.yaml");
    assert_eq!(
        config["exporters"]["loadbalancing"]["routing_key"],
        "traceID"
    );
}

#[test]
fn the_sampler_decides_whole_traces_then_reaches_every_backend() {
    let exporters = check_pipelines("deploy/collector-sampler.yaml");
    // Jaeger, Tempo, Zipkin, X-Ray, Cloud Trace.
    for want in [
        "otlp/jaeger",
        "otlp/tempo",
        "zipkin",
        "awsxray",
        "googlecloud",
    ] {
        assert!(exporters.iter().any(|e| e == want), "{want}: {exporters:?}");
    }
    let config = yaml("deploy/collector-sampler.yaml");
    let processors = names(&config["service"]["pipelines"]["traces"]["processors"]);
    // Tail sampling before batching: a batch must not split a trace's decision.
    let at = |p: &str| processors.iter().position(|x| x == p);
    assert!(at("tail_sampling") < at("batch"), "{processors:?}");
    assert!(at("memory_limiter") == Some(0), "{processors:?}");
}

fn daemonset_container() -> Value {
    let ds = yaml("deploy/daemonset.yaml");
    assert_eq!(ds["kind"], "DaemonSet");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(
        spec["hostNetwork"], true,
        "a pod captures its node's traffic"
    );
    spec["containers"][0].clone()
}

#[test]
fn the_daemonset_holds_only_the_capabilities_capture_needs() {
    let c = daemonset_container();
    let security = &c["securityContext"];
    assert_eq!(names(&security["capabilities"]["drop"]), ["ALL"]);
    let mut added = names(&security["capabilities"]["add"]);
    added.sort();
    assert_eq!(added, ["NET_ADMIN", "NET_RAW", "SETGID", "SETUID"]);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    // Started as root to open the capture, it must be told whom to become.
    let args = names(&c["args"]);
    let user = args.iter().position(|a| a == "--user").expect("--user");
    assert_ne!(args[user + 1], "root");
}

/// The arguments of the unit's ExecStart after the binary (continuation lines joined, quotes
/// taken off as systemd does).
fn systemd_exec_args() -> Vec<String> {
    let unit = text("deploy/tapspan.service").replace("\\\n", " ");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut args = Vec::new();
    let mut quoted = false;
    let mut word = String::new();
    for ch in exec.chars() {
        match ch {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    args.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    args.push(word);
    args.remove(0); // the binary
    args
}

#[test]
fn the_unit_runs_as_its_own_user_with_the_two_capture_capabilities() {
    let unit = text("deploy/tapspan.service");
    let setting = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key}"))
            .to_string()
    };
    assert_eq!(setting("User"), "tapspan");
    assert_eq!(setting("AmbientCapabilities"), "CAP_NET_RAW CAP_NET_ADMIN");
    assert_eq!(
        setting("CapabilityBoundingSet"),
        "CAP_NET_RAW CAP_NET_ADMIN"
    );
    assert_eq!(systemd_exec_args()[0], "live");
}

#[cfg(feature = "live")]
#[test]
fn every_flag_the_examples_pass_is_one_tapspan_live_takes() {
    let help = common::tapspan(&["live", "--help"]);
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    let known = |flag: &str| {
        help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
            .any(|w| w == flag)
    };
    let daemonset = names(&daemonset_container()["args"]);
    for (example, args) in [("daemonset", daemonset), ("systemd", systemd_exec_args())] {
        assert_eq!(args[0], "live", "{example}");
        for flag in args.iter().filter(|a| a.starts_with("--")) {
            assert!(known(flag), "{example}: tapspan live does not take {flag}");
        }
    }
}
