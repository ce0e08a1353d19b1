//! openapi.yaml follows the contract's conventions (docs/architecture.md, "The contract") for
//! every route the router serves: the status codes its role and path imply, and links from
//! every creation. `scripts/contract-test` then holds the running server to the document.

use std::collections::{BTreeMap, BTreeSet};

use tidemark::web::Role;

use crate::deploy::{normalise, root};

/// One operation of openapi.yaml: its response codes and whether its 201 carries links.
struct Operation {
    codes: BTreeSet<String>,
    created_links: bool,
}

/// (METHOD, normalised path) -> the operation, read with PyYAML.
fn operations() -> BTreeMap<(String, String), Operation> {
    let script = r#"
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
for path, item in doc["paths"].items():
    for method, op in item.items():
        if method in ("get", "post", "put", "patch", "delete"):
            links = "links" in op["responses"].get("201", {})
            print(method.upper(), path, int(links), *sorted(op["responses"]))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(root().join("openapi.yaml"))
        .output()
        .expect("python3 with PyYAML (scripts/services installs cfn-lint, which brings it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            let (method, path) = (words.next().unwrap(), words.next().unwrap());
            let created_links = words.next() == Some("1");
            let codes = words.map(str::to_string).collect();
            let key = (method.to_string(), normalise(path));
            (
                key,
                Operation {
                    codes,
                    created_links,
                },
            )
        })
        .collect()
}

#[test]
fn every_operation_lists_the_codes_its_role_and_path_imply() {
    let ops = operations();
    let mut missing = Vec::new();
    for route in tidemark::api::routes() {
        let key = (route.method.to_string(), normalise(route.path));
        let op = ops
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} not in openapi.yaml"));
        let mut wanted = vec!["400"];
        if route.role.is_some() {
            wanted.push("401");
        }
        if route.role.is_some_and(|r| r > Role::Viewer) {
            wanted.push("403");
        }
        if route.path.contains('{') {
            wanted.push("404");
        }
        for code in wanted {
            if !op.codes.contains(code) {
                missing.push(format!("{} {} lacks {code}", route.method, route.path));
            }
        }
        if op.codes.contains("201") && !op.created_links {
            missing.push(format!(
                "{} {}: its 201 has no links",
                route.method, route.path
            ));
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}
