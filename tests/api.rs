//! Foundation: the HTTP contract over the local stack (instances, credentials, tags, system).

use serde_json::json;
use tidemark::http::Role;
use tidemark_tests::TestStack;

#[tokio::test]
async fn health_answers_without_token() {
    let t = TestStack::start().await;
    let r = t.call(reqwest::Method::GET, "/health", None, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.data()["database"], json!("ok"));
    assert!(r.headers.contains_key("x-request-id"));
    let r = t.get("/instances?limit=0", Role::Viewer).await;
    assert_eq!((r.status, r.code()), (400, "VALIDATION_ERROR"));
}
