//! `--demo`: register this machine's PostgreSQL and MariaDB/MySQL as instances with a
//! credential and a few tags, then collect at once.

use serde_json::json;
use tidemark::web::{RawRequest, Role};
use tidemark::App;

async fn call(
    app: &App,
    token: &str,
    method: http::Method,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let mut raw = RawRequest::new(method, path);
    raw.headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    raw.body = serde_json::to_vec(&body).unwrap_or_default().into();
    let resp = tidemark::api::dispatch(app, raw, None).await;
    serde_json::from_slice(&resp.body).unwrap_or(serde_json::Value::Null)
}

async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

pub async fn run(app: &App, tokens: &[(Role, String)]) -> anyhow::Result<()> {
    let admin = tokens
        .iter()
        .find(|(r, _)| *r == Role::Admin)
        .map(|(_, t)| t.clone())
        .unwrap_or_default();
    let post = http::Method::POST;
    let mut tags = Vec::new();
    for tag in [
        json!({"name": "demo", "display_name": "Demo", "category": "env"}),
        json!({"name": "local", "display_name": "This machine", "category": "site"}),
    ] {
        tags.push(call(app, &admin, post.clone(), "/api/v1/tags", tag).await);
    }
    let tag_ids: Vec<i64> = tags
        .iter()
        .filter_map(|v| v["data"]["id"].as_i64())
        .collect();
    let mut registered = 0;
    // (port, credential, instance) for each engine that answers on this machine.
    let servers = [
        (
            5432,
            json!({"name": "demo-postgres", "username": "postgres", "password": ""}),
            json!({"name": "local-postgres", "db_type": "postgresql", "host": "127.0.0.1", "port": 5432,
                   "description": "PostgreSQL on this machine"}),
        ),
        (
            3306,
            json!({"name": "demo-mariadb", "username": "root", "password": ""}),
            json!({"name": "local-mariadb", "db_type": "mysql", "host": "127.0.0.1", "port": 3306,
                   "description": "MariaDB/MySQL on this machine"}),
        ),
    ];
    for (port, credential, mut instance) in servers {
        if !port_open(port).await {
            continue;
        }
        let cred = call(app, &admin, post.clone(), "/api/v1/credentials", credential).await;
        instance["credential_id"] = cred["data"]["id"].clone();
        instance["tag_ids"] = json!(tag_ids);
        let r = call(app, &admin, post.clone(), "/api/v1/instances", instance).await;
        registered += i32::from(r["success"] == json!(true));
    }
    let run = call(app, &admin, post, "/api/v1/collections", json!({})).await;
    tracing::info!(registered, collection = %run["data"], "demo ready");
    Ok(())
}
