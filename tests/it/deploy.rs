//! The deployment artefacts agree with the code: openapi.yaml, template.yaml, the router and
//! the function binaries name the same routes and functions; the template lints clean
//! offline, as written and as expanded by the SAM transform; the contract's instance name
//! pattern allows what the server allows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::json;
use tidemark_tests::{Role, TestStack};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `/instances/{id}` and `/instances/{instance_id}` are the same route.
fn normalise(path: &str) -> String {
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

/// (function binary -> its HttpApi routes) and every binary named in template.yaml.
fn template_functions() -> BTreeMap<String, BTreeSet<(String, String)>> {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    let mut out: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut binary: Option<String> = None;
    let mut method: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        // A new resource starts at two spaces of indentation.
        if line.starts_with("  ") && !line.starts_with("   ") && trimmed.ends_with(':') {
            binary = None;
        }
        if let Some(b) = trimmed.strip_prefix("Binary: ") {
            binary = Some(b.to_string());
            out.entry(b.to_string()).or_default();
        } else if let Some(m) = trimmed.strip_prefix("Method: ") {
            method = Some(m.to_string());
        } else if let Some(p) = trimmed.strip_prefix("Path: ") {
            if let (Some(b), Some(m)) = (&binary, method.take()) {
                let p = p
                    .strip_prefix("/api/v1")
                    .expect("HttpApi paths start with /api/v1");
                out.entry(b.clone()).or_default().insert((m, normalise(p)));
            }
        }
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

#[test]
fn template_lints_clean_as_written_and_expanded() {
    let out = std::process::Command::new("python3")
        .arg(root().join("infra/aws/lint_template.py"))
        .arg(root().join("template.yaml"))
        .output()
        .expect("python3 (scripts/services installs cfn-lint and aws-sam-translator)");
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
