//! The deployment artefacts agree with the code: openapi.yaml, template.yaml, the router and
//! the function binaries name the same routes and functions; the template lints clean
//! offline, as written and as expanded by the SAM transform; the contract's instance name
//! pattern allows what the server allows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::json;
use tidemark_tests::{Role, TestStack};

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `/instances/{id}` and `/instances/{instance_id}` are the same route.
pub(crate) fn normalise(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

fn router_routes() -> BTreeMap<(String, String), String> {
    tidemark::api::routes()
        .iter()
        .map(|r| {
            (
                (r.method.to_string(), normalise(r.path)),
                r.function.to_string(),
            )
        })
        .collect()
}

fn openapi_routes() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(root().join("openapi.yaml")).expect("openapi.yaml");
    let mut out = BTreeSet::new();
    let mut in_paths = false;
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line == "paths:" {
            in_paths = true;
            continue;
        }
        if in_paths && !line.starts_with(' ') && !line.is_empty() {
            break;
        }
        if let Some(p) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
            current = Some(format!("/{p}"));
        } else if let Some(m) = line.strip_prefix("    ").and_then(|m| m.strip_suffix(':')) {
            if ["get", "post", "put", "patch", "delete"].contains(&m) {
                if let Some(p) = &current {
                    out.insert((m.to_uppercase(), normalise(p)));
                }
            }
        }
    }
    out
}

/// (function binary -> its HttpApi routes) and every binary named in template.yaml, from the
/// one reader of the template's functions (the emulated-AWS harness's `Template`).
fn template_functions() -> BTreeMap<String, BTreeSet<(String, String)>> {
    let template = crate::aws_emulated::lambda::Template::load();
    let mut out: BTreeMap<String, BTreeSet<(String, String)>> = template
        .binaries
        .iter()
        .map(|b| (b.clone(), BTreeSet::new()))
        .collect();
    for (binary, method, path) in &template.routes {
        let path = path
            .strip_prefix("/api/v1")
            .expect("HttpApi paths start with /api/v1");
        out.entry(binary.clone())
            .or_default()
            .insert((method.clone(), normalise(path)));
    }
    out
}

fn binaries() -> BTreeSet<String> {
    std::fs::read_dir(root().join("functions/src/bin"))
        .expect("functions/src/bin")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".rs"))
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn openapi_and_router_name_the_same_routes() {
    let router: BTreeSet<(String, String)> = router_routes().into_keys().collect();
    let openapi = openapi_routes();
    let missing_in_openapi: Vec<_> = router.difference(&openapi).collect();
    let missing_in_router: Vec<_> = openapi.difference(&router).collect();
    assert!(
        missing_in_openapi.is_empty(),
        "routes missing from openapi.yaml: {missing_in_openapi:?}"
    );
    assert!(
        missing_in_router.is_empty(),
        "openapi.yaml routes the router does not serve: {missing_in_router:?}"
    );
    assert!(
        router.len() > 40,
        "the route table looks truncated: {}",
        router.len()
    );
}

#[test]
fn template_wires_every_route_to_the_function_that_serves_it() {
    let template = template_functions();
    let mut wired = BTreeSet::new();
    for (binary, routes) in &template {
        for route in routes {
            assert!(
                wired.insert(route.clone()),
                "{route:?} is wired twice in template.yaml"
            );
        }
        let _ = binary;
    }
    for ((method, path), function) in router_routes() {
        let in_template = template
            .get(&function)
            .is_some_and(|r| r.contains(&(method.clone(), path.clone())));
        assert!(in_template, "{method} {path} (function {function}) has no HttpApi event on that function in template.yaml");
    }
    let router: BTreeSet<(String, String)> = router_routes().into_keys().collect();
    let extra: Vec<_> = wired.difference(&router).collect();
    assert!(
        extra.is_empty(),
        "template.yaml routes the router does not serve: {extra:?}"
    );
}

#[test]
fn every_function_has_a_binary_and_every_binary_a_function() {
    let in_template: BTreeSet<String> = template_functions().into_keys().collect();
    let bins = binaries();
    assert_eq!(
        in_template, bins,
        "template.yaml functions vs functions/src/bin"
    );
    for f in [
        "collect-dispatch",
        "collect-instance",
        "export-worker",
        "aggregate",
        "maintenance",
        "migrate",
    ] {
        assert!(bins.contains(f), "{f}");
    }
}

/// `infra/aws/<script> template.yaml` run by python3; `needs` names what that takes.
fn on_template(script: &str, needs: &str) -> std::process::Output {
    std::process::Command::new("python3")
        .arg(root().join("infra/aws").join(script))
        .arg(root().join("template.yaml"))
        .output()
        .expect(needs)
}

#[test]
fn template_lints_clean_as_written_and_expanded() {
    let out = on_template(
        "lint_template.py",
        "python3 (scripts/services installs cfn-lint and aws-sam-translator)",
    );
    assert!(
        out.status.success(),
        "cfn-lint found problems:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The instance names the contract's pattern allows are exactly those the server takes:
/// ASCII letters, digits, `_` and `-`, and the CJK blocks, probed at each block's edges and
/// just outside them. The contract's verdict comes from the pattern in openapi.yaml, read with
/// Python's `re` as the validator reads it; the server's from POST /instances.
#[tokio::test]
async fn the_instance_name_pattern_is_what_the_server_accepts() {
    let mut probes: Vec<u32> = "aZ0_-.:/é".chars().map(u32::from).collect();
    probes.extend([0x3042, 0xAC00]); // Hiragana and Hangul: not part of the rule.
    for (first, last) in [
        (0x3400, 0x4DBF),
        (0x4E00, 0x9FFF),
        (0xF900, 0xFAFF),
        (0x20000, 0x2EBEF),
    ] {
        probes.extend([first - 1, first, last, last + 1]);
    }
    let script = "import sys, re, yaml\n\
        s = yaml.safe_load(open(sys.argv[1]))['components']['schemas']['InstanceCreate']\n\
        p = s['properties']['name']['pattern']\n\
        print(''.join('1' if re.fullmatch(p, 'n' + chr(int(c)) + 'n') else '0' for c in sys.argv[2:]))";
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(root().join("openapi.yaml"))
        .args(probes.iter().map(u32::to_string))
        .output()
        .expect("python3 with PyYAML (scripts/services installs cfn-lint, which brings it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let contract: Vec<bool> = String::from_utf8_lossy(&out.stdout)
        .trim()
        .chars()
        .map(|v| v == '1')
        .collect();
    assert_eq!(contract.len(), probes.len());

    let t = TestStack::start().await;
    for (cp, allowed) in probes.iter().zip(contract) {
        let c = char::from_u32(*cp).expect("a scalar value");
        let r = t
            .post(
                "/instances",
                Role::Operator,
                json!({"name": format!("n{c}n"), "db_type": "mysql", "host": "h", "port": 1}),
            )
            .await;
        let accepted = match r.status {
            201 => true,
            400 if r.body["error"]["field"] == json!("name") => false,
            _ => panic!("U+{cp:04X}: {r:?}"),
        };
        assert_eq!(accepted, allowed, "U+{cp:04X}: server vs openapi.yaml");
    }
}

/// (method, path) -> the roles named in its `AuthorizationScopes` (`None`: no authorizer).
fn template_scopes() -> BTreeMap<(String, String), Option<BTreeSet<String>>> {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    let mut out = BTreeMap::new();
    let mut method: Option<String> = None;
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(m) = trimmed.strip_prefix("Method: ") {
            method = Some(m.to_string());
        } else if let Some(p) = trimmed.strip_prefix("Path: /api/v1") {
            if let Some(m) = method.take() {
                let key = (m, normalise(p));
                out.insert(key.clone(), Some(BTreeSet::new()));
                current = Some(key);
            }
        } else if trimmed == "Authorizer: NONE" {
            if let Some(key) = &current {
                out.insert(key.clone(), None);
            }
        } else if let Some(scope) = trimmed
            .strip_prefix("- !Sub \"${ScopePrefix}/")
            .and_then(|s| s.strip_suffix('"'))
        {
            if let Some(Some(set)) = current.as_ref().and_then(|k| out.get_mut(k)) {
                set.insert(scope.to_string());
            }
        } else if trimmed.ends_with(':') && !trimmed.starts_with("Auth") {
            current = None;
        }
    }
    out
}

#[test]
fn api_gateway_checks_the_scopes_of_each_route_role() {
    use tidemark::web::Role;
    let scopes = template_scopes();
    for route in tidemark::api::routes() {
        let key = (route.method.to_string(), normalise(route.path));
        let want: Option<BTreeSet<String>> = route.role.map(|needed| {
            [Role::Viewer, Role::Operator, Role::Admin]
                .into_iter()
                .filter(|r| *r >= needed)
                .map(|r| r.as_str().to_string())
                .collect()
        });
        let got = scopes.get(&key).cloned().unwrap_or(Some(BTreeSet::new()));
        assert_eq!(
            got, want,
            "{} {}: AuthorizationScopes in template.yaml vs the router's role",
            key.0, key.1
        );
    }
    let template = std::fs::read_to_string(root().join("template.yaml")).expect("template");
    assert!(template.contains("TIDEMARK_SCOPE_PREFIX: !Ref ScopePrefix"));
}

/// template.yaml as `infra/aws/template_facts.py` reads it: grants per function, alarms.
fn template_facts() -> serde_json::Value {
    let out = on_template(
        "template_facts.py",
        "python3 with PyYAML (scripts/services installs cfn-lint, which brings it)",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("template facts")
}

/// Rust sources of what is deployed: the library and the Lambda wiring.
fn deployed_sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for e in std::fs::read_dir(dir).expect("source dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).expect("source");
                out.push((p, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("shared/src"), &mut out);
    walk(&root().join("functions/src"), &mut out);
    out
}

/// Every AWS SDK operation the deployed code calls: `.operation()` followed by the
/// request's target (`.bucket(`, `.queue_url(`, `.secret_id(`, `.topic_arn(`).
fn sdk_operations() -> BTreeSet<String> {
    let mut ops = BTreeSet::new();
    for (_, text) in deployed_sources() {
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for pair in lines.windows(2) {
            let targets = [".bucket(", ".queue_url(", ".secret_id(", ".topic_arn("];
            if !targets.iter().any(|t| pair[1].starts_with(t)) {
                continue;
            }
            if let Some(op) = pair[0].strip_prefix('.').and_then(|l| l.strip_suffix("()")) {
                if op.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    ops.insert(op.to_string());
                }
            }
        }
    }
    ops
}

/// A function's IAM policy in template.yaml grants exactly what its code calls: the table in
/// `functions/src/aws.rs`, itself checked against the SDK calls found in the source.
#[test]
fn every_function_is_granted_what_its_code_calls_and_nothing_else() {
    use tidemark_functions::aws::{CALLS, FUNCTIONS};
    let called = sdk_operations();
    let known: BTreeMap<&str, &str> = CALLS.iter().copied().collect();
    for op in &called {
        assert!(
            known.contains_key(op.as_str()),
            "the code calls {op} but functions/src/aws.rs does not say which IAM action it needs"
        );
    }
    for (op, _) in CALLS {
        assert!(
            called.contains(*op),
            "functions/src/aws.rs lists {op}, which no code calls any more"
        );
    }
    let actions: BTreeSet<&str> = CALLS.iter().map(|(_, a)| *a).collect();
    let tabled: BTreeSet<&str> = FUNCTIONS
        .iter()
        .flat_map(|(_, g)| g.iter().map(|(a, _)| *a))
        .collect();
    assert_eq!(
        actions, tabled,
        "actions called vs actions given to some function"
    );

    let facts = template_facts();
    let functions = facts["functions"].as_object().expect("functions");
    let table: BTreeMap<&str, BTreeSet<(String, String)>> = FUNCTIONS
        .iter()
        .map(|(f, g)| {
            (
                *f,
                g.iter()
                    .map(|(a, r)| (a.to_string(), r.to_string()))
                    .collect(),
            )
        })
        .collect();
    let binaries: BTreeSet<&str> = functions.keys().map(String::as_str).collect();
    assert_eq!(
        binaries,
        table.keys().copied().collect(),
        "functions in template.yaml vs functions/src/aws.rs"
    );
    for (binary, wanted) in &table {
        let granted: BTreeSet<(String, String)> = functions[*binary]["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .map(|g| {
                (
                    g[0].as_str().unwrap_or("").to_string(),
                    g[1].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let missing: Vec<_> = wanted.difference(&granted).collect();
        let unused: Vec<_> = granted.difference(wanted).collect();
        assert!(
            missing.is_empty() && unused.is_empty(),
            "{binary}: template.yaml lacks {missing:?} and grants {unused:?} that nothing calls"
        );
    }
}

/// The metric names of the alarms in `namespace`.
fn ours_metrics(alarms: &[serde_json::Value], namespace: &str) -> BTreeSet<String> {
    alarms
        .iter()
        .filter(|a| a["namespace"] == json!(namespace))
        .filter_map(|a| a["metric"].as_str().map(str::to_string))
        .collect()
}

/// Alarms on the metrics the code publishes watch them with the dimensions the EMF line
/// carries (a metric is its name plus all its dimensions: an alarm without them watches a
/// metric nobody writes); every scheduled function raises an alarm when it errors.
#[test]
fn alarms_watch_what_the_code_publishes() {
    use tidemark::tasks::run::{metrics_line, ClosedRun};
    let run = ClosedRun {
        run_id: uuid::Uuid::nil(),
        task_key: tidemark::collect::fanout::TASK_KEY.into(),
        status: tidemark::tasks::RunStatus::CompletedWithErrors,
        summary: json!({"duration_ms": 1, "items_succeeded": 1, "items_failed": 1, "failure_rate": 0.5}),
    };
    let line = metrics_line(&run, chrono::Utc::now());
    let blocked = tidemark::tasks::blocked_line(&run.task_key, None, chrono::Utc::now());
    // Metric name -> the dimension sets (with values) every EMF line the code writes gives it.
    let mut published: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    let mut namespaces = BTreeSet::new();
    for line in [&line, &blocked] {
        let emf = &line["_aws"]["CloudWatchMetrics"][0];
        namespaces.insert(emf["Namespace"].as_str().expect("namespace").to_string());
        let dimension_sets: Vec<BTreeMap<String, String>> = emf["Dimensions"]
            .as_array()
            .expect("dimensions")
            .iter()
            .map(|set| {
                set.as_array()
                    .expect("a dimension set")
                    .iter()
                    .map(|d| {
                        let d = d.as_str().expect("dimension name");
                        (d.to_string(), line[d].as_str().unwrap_or("").to_string())
                    })
                    .collect()
            })
            .collect();
        for m in emf["Metrics"].as_array().expect("metrics") {
            let name = m["Name"].as_str().expect("metric name");
            assert!(line.get(name).is_some(), "{name} has no value in {line}");
            published
                .entry(name.to_string())
                .or_default()
                .extend(dimension_sets.clone());
        }
    }
    assert_eq!(namespaces.len(), 1, "{namespaces:?}");
    let namespace = namespaces.first().expect("namespace").as_str();

    let facts = template_facts();
    let alarms = facts["alarms"].as_array().expect("alarms");
    let ours: Vec<&serde_json::Value> = alarms
        .iter()
        .filter(|a| a["namespace"] == json!(namespace))
        .collect();
    assert!(!ours.is_empty(), "no alarm on the {namespace} metrics");
    for a in ours {
        let metric = a["metric"].as_str().unwrap_or("");
        let Some(dimension_sets) = published.get(metric) else {
            panic!("{a}: the code publishes no {metric}");
        };
        let dims: BTreeMap<String, String> =
            serde_json::from_value(a["dimensions"].clone()).expect("dimensions");
        assert!(
            dimension_sets.contains(&dims),
            "{a}: the EMF line publishes {metric} with dimensions {dimension_sets:?}"
        );
    }
    assert!(
        ours_metrics(alarms, namespace).contains("DispatchBlocked"),
        "no alarm on a scheduled dispatch that found a live run"
    );
    // The failure rate is in percent: the threshold must be reachable.
    let failure = alarms
        .iter()
        .find(|a| a["metric"] == json!("FailureRate"))
        .expect("a FailureRate alarm");
    let threshold = failure["threshold"].as_f64().expect("threshold");
    assert!(
        line["FailureRate"].as_f64().expect("rate") > threshold && threshold < 100.0,
        "{failure}"
    );

    for (binary, f) in facts["functions"].as_object().expect("functions") {
        if f["scheduled"] != json!(true) {
            continue;
        }
        let logical = f["logical"].as_str().expect("logical id");
        let watched = alarms.iter().any(|a| {
            a["namespace"] == json!("AWS/Lambda")
                && a["metric"] == json!("Errors")
                && a["dimensions"]["FunctionName"] == json!(logical)
        });
        assert!(
            watched,
            "{binary} runs on a schedule but no alarm fires when it errors"
        );
    }
}

/// The template's parameters reach the code as settings it accepts and honours: every value
/// the template allows is a valid setting, `CollectConcurrency`'s range is the code's, the
/// schedule crons are what `/schedules` shows, and the export retention is read.
#[test]
fn template_parameters_reach_the_code() {
    use tidemark::config::{Config, COLLECT_CONCURRENCY};
    let facts = template_facts();
    let params = &facts["parameters"];
    let env = facts["environment"].as_object().expect("environment");
    let config = |name: &str, value: &str| {
        Config::from_lookup(|k| match k {
            "DATABASE_URL" => Some("postgres://x".into()),
            _ if k == name => Some(value.to_string()),
            _ => None,
        })
    };
    let param_of = |var: &str| -> &serde_json::Value {
        let p = env
            .get(var)
            .and_then(|v| v["ref"].as_str())
            .unwrap_or_else(|| panic!("template.yaml does not pass {var} from a parameter"));
        &params[p]
    };
    for (var, p) in env {
        let Some(name) = p["ref"].as_str() else {
            continue;
        };
        let Some(param) = params.get(name) else {
            continue;
        };
        if !var.starts_with("TIDEMARK_") {
            continue;
        }
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        for key in ["Default", "MinValue", "MaxValue"] {
            if let Some(v) = param.get(key) {
                let v = text(v);
                assert!(
                    config(var, &v).is_ok(),
                    "{name}'s {key} {v} is refused by the code as {var}"
                );
            }
        }
    }
    let cc = param_of("TIDEMARK_COLLECT_CONCURRENCY");
    assert_eq!(
        (cc["MinValue"].as_u64(), cc["MaxValue"].as_u64()),
        (
            Some(*COLLECT_CONCURRENCY.start() as u64),
            Some(*COLLECT_CONCURRENCY.end() as u64)
        ),
        "CollectConcurrency's range vs the code's"
    );
    let days = param_of("TIDEMARK_EXPORT_RETENTION_DAYS")["Default"]
        .as_i64()
        .expect("a number");
    let c = config("TIDEMARK_EXPORT_RETENTION_DAYS", &days.to_string()).expect("config");
    assert_eq!(i64::from(c.export_retention_days), days);
    for (var, job) in [
        (
            "TIDEMARK_COLLECT_AT",
            tidemark::system::schedules::Job::Collect,
        ),
        (
            "TIDEMARK_AGGREGATE_AT",
            tidemark::system::schedules::Job::Aggregate,
        ),
        (
            "TIDEMARK_MAINTENANCE_AT",
            tidemark::system::schedules::Job::Maintenance,
        ),
    ] {
        let cron = param_of(var)["Default"].as_str().expect("a cron");
        let c = config(var, cron).expect("config");
        let shown = tidemark::system::schedules::schedules(&c)
            .into_iter()
            .find(|s| s.job == job)
            .expect("a schedule")
            .cron();
        assert_eq!(shown, cron, "{var}: /schedules vs template.yaml");
    }
}
