//! The Lambda adapters with real event payloads: an API Gateway HTTP API (payload 2.0)
//! request with JWT authorizer claims, and an SQS batch with a bad and a failing record.

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::json;

use tidemark_tests::TestStack;

fn apigw_event(
    method: &str,
    path: &str,
    query: &str,
    scopes: Option<&str>,
    body: Option<&str>,
) -> String {
    let mut authorizer = json!(null);
    if let Some(scope) = scopes {
        authorizer = json!({"jwt": {"claims": {"sub": "user-42", "scope": scope}, "scopes": null}});
    }
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json", "host": "abc.execute-api.us-east-1.amazonaws.com"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc", "domainName": "abc.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc", "requestId": "req-123", "routeKey": format!("{method} {path}"), "stage": "$default",
            "time": "25/Nov/2026:22:00:00 +0000", "timeEpoch": 1795730400000i64,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "10.0.0.1", "userAgent": "curl"},
            "authorizer": authorizer
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

async fn call(
    t: &TestStack,
    function: &str,
    event: String,
) -> (u16, serde_json::Value, Option<String>) {
    let req = lambda_http::request::from_str(&event).expect("API Gateway v2 event");
    let raw = tidemark_functions::to_raw(req);
    let resp = tidemark::api::dispatch(&t.stack.app_with_jwt(), raw, Some(function)).await;
    // What the Lambda hands back to API Gateway: JSON as a text body, never base64.
    let out = tidemark_functions::to_lambda(resp).expect("a Lambda response");
    let rid = out
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match out.body() {
        lambda_http::Body::Text(text) => serde_json::from_str(text).expect("JSON text"),
        other => panic!("a JSON answer must be a text body, got {other:?}"),
    };
    (out.status().as_u16(), body, rid)
}

#[tokio::test]
async fn http_api_event_with_jwt_scopes() {
    let t = TestStack::start().await;
    let (status, body, rid) = call(
        &t,
        "api-instances",
        apigw_event(
            "GET",
            "/api/v1/instances",
            "limit=5",
            Some("openid tidemark/viewer"),
            None,
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["limit"], json!(5));
    assert_eq!(
        rid.as_deref(),
        Some("req-123"),
        "API Gateway's request id is the response's"
    );
    let create = r#"{"name":"from-lambda","db_type":"pg","host":"db1","port":5432}"#;
    let post = |scopes| {
        let event = apigw_event("POST", "/api/v1/instances", "", Some(scopes), Some(create));
        call(&t, "api-instances", event)
    };
    let (status, body, _) = post("tidemark/viewer").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("PERMISSION_DENIED"))
    );
    let (status, _, _) = post("tidemark/operator").await;
    assert_eq!(status, 201);
    // No authorizer context: 401; a route of another function: 404 in this one.
    for (function, path, scopes, expected) in [
        ("api-instances", "/api/v1/instances", None, 401),
        ("api-instances", "/api/v1/tags", Some("tidemark/admin"), 404),
        ("api-system", "/api/v1/health", None, 200),
    ] {
        let event = apigw_event("GET", path, "", scopes, None);
        let (status, _, _) = call(&t, function, event).await;
        assert_eq!(status, expected, "{function} {path}");
    }
}

#[tokio::test]
async fn sqs_batch_reports_only_failed_records() {
    let t = TestStack::start().await;
    let event: SqsEvent = serde_json::from_value(json!({"Records": [
        {"messageId": "m-ok", "body": "{\"n\": 1}", "attributes": {}, "messageAttributes": {}},
        {"messageId": "m-bad-json", "body": "not json", "attributes": {}, "messageAttributes": {}},
        {"messageId": "m-fails", "body": "{\"n\": 2}", "attributes": {}, "messageAttributes": {}}
    ]}))
    .expect("SQS event");
    #[derive(serde::Deserialize)]
    struct M {
        n: i32,
    }
    let resp = tidemark_functions::handle_batch(&t.stack.app, event, |_app, m: M| async move {
        anyhow::ensure!(m.n != 2, "transient failure");
        Ok(())
    })
    .await;
    let failed: Vec<String> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec!["m-fails".to_string()]);
}

/// A scope grants a role only when it is exactly `<prefix>/<role>`: look-alikes grant nothing.
#[tokio::test]
async fn only_exact_prefixed_scopes_grant_roles_through_api_gateway() {
    let t = TestStack::start().await;
    let credentials =
        |scope: &'static str| apigw_event("GET", "/api/v1/credentials", "", Some(scope), None);
    for scope in [
        "other/admin",
        "admin",
        "urn:x:admin",
        "tidemark/administrator",
        "tidemark-admin",
    ] {
        let (status, body, _) = call(&t, "api-instances", credentials(scope)).await;
        assert_eq!(status, 403, "{scope}: {body}");
    }
    let (status, body, _) = call(&t, "api-instances", credentials("openid tidemark/admin")).await;
    assert_eq!(status, 200, "{body}");
    // An operator scope alongside a look-alike admin one stays an operator.
    let (status, _, _) = call(
        &t,
        "api-instances",
        credentials("tidemark/operator other/admin"),
    )
    .await;
    assert_eq!(status, 403);
}
