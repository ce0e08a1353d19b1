//! Tag bulk actions: set-based statements, a constant statement count whatever the number of
//! instances, the contract's errors, idempotency and concurrency.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use tidemark::tags::bulk::{self, Counted, PairsOf};
use tidemark_tests::{token_subject, Role, TestStack, OPERATOR};

async fn links(t: &TestStack, instance_id: i64) -> BTreeSet<i64> {
    let c = t.db.connect().await;
    c.query(
        "SELECT tag_id FROM instance_tags WHERE instance_id = $1",
        &[&instance_id],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// An instance that exists but is soft-deleted.
async fn deleted_instance(t: &TestStack) -> i64 {
    let gone = t.seed_instances("gone-", 1).await[0];
    let r = t
        .delete(&format!("/instances/{gone}"), Role::Operator)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    gone
}

/// A tag that exists but is inactive.
async fn inactive_tag(t: &TestStack, name: &str) -> i64 {
    let id = t.tag(name).await;
    let body = json!({"is_active": false});
    let r = t.patch(&format!("/tags/{id}"), Role::Operator, body).await;
    assert_eq!(r.status, 200, "{r:?}");
    id
}

async fn link_count(t: &TestStack) -> i64 {
    let c = t.db.connect().await;
    tidemark_tests::scalar(&c, "SELECT count(*) FROM instance_tags").await
}

#[tokio::test]
async fn assign_remove_and_list_over_http() {
    let t = TestStack::start().await;
    let ids = t.seed_instances("bulk-", 3).await;
    let gone = deleted_instance(&t).await;
    let prod = t.tag("prod").await;
    let eu = t.tag("eu").await;
    let old = inactive_tag(&t, "old").await;

    // Duplicates are ignored; unknown, deleted and inactive ids are reported and skipped.
    let body = json!({"instance_ids": [ids[0], ids[1], ids[2], ids[0], gone, 999_999],
                      "tag_ids": [prod, eu, eu, old, 888_888]});
    let r = t
        .post("/tags/bulk/assign", Role::Operator, body.clone())
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.data(),
        &json!({"assigned_count": 6, "already_assigned_count": 0,
                "missing_instance_ids": [gone, 999_999], "missing_tag_ids": [old, 888_888]})
    );
    // Idempotent: the second time nothing is new.
    let r = t.post("/tags/bulk/assign", Role::Operator, body).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.data()["assigned_count"], json!(0));
    assert_eq!(r.data()["already_assigned_count"], json!(6));
    assert_eq!(link_count(&t).await, 6);

    // instance-tags (viewer): the union, each tag with the instances that carry it.
    let r = t
        .post(
            "/tags/bulk/instance-tags",
            Role::Viewer,
            json!({"instance_ids": [ids[0], ids[2], 999_999]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let tags = r.data()["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 2, "{r:?}");
    assert_eq!(tags[0]["name"], json!("eu"));
    assert_eq!(tags[0]["instance_ids"], json!([ids[0], ids[2]]));
    assert_eq!(tags[1]["name"], json!("prod"));
    assert_eq!(tags[1]["id"], json!(prod));
    assert_eq!(tags[1]["instance_ids"], json!([ids[0], ids[2]]));
    assert_eq!(r.data()["missing_instance_ids"], json!([999_999]));

    let r = t
        .post(
            "/tags/bulk/remove",
            Role::Operator,
            json!({"instance_ids": [ids[0], ids[1]], "tag_ids": [eu, 777]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.data(),
        &json!({"removed_count": 2, "missing_instance_ids": [], "missing_tag_ids": [777]})
    );
    assert_eq!(links(&t, ids[0]).await, BTreeSet::from([prod]));
    assert_eq!(links(&t, ids[2]).await, BTreeSet::from([prod, eu]));

    let r = t
        .post(
            "/tags/bulk/remove-all",
            Role::Operator,
            json!({"instance_ids": [ids[2], ids[2], gone]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.data(),
        &json!({"removed_count": 2, "missing_instance_ids": [gone]})
    );
    assert!(links(&t, ids[2]).await.is_empty());
    assert_eq!(link_count(&t).await, 2);

    // Instances without tags: an empty union, not an error.
    let r = t
        .post(
            "/tags/bulk/instance-tags",
            Role::Viewer,
            json!({"instance_ids": [ids[2]]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.data()["tags"], json!([]));

    // One audit line per call, with who, the action and the counts.
    let c = t.db.connect().await;
    let rows = c
        .query(
            "SELECT message, context FROM event_logs WHERE module = 'tags' ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let lines: Vec<(String, Value)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let actions: Vec<&str> = lines
        .iter()
        .map(|(_, c)| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "assign",
            "assign",
            "instance-tags",
            "remove",
            "remove-all",
            "instance-tags"
        ]
    );
    assert_eq!(lines[0].0, "bulk assign");
    assert_eq!(lines[0].1["who"], json!(token_subject(OPERATOR)));
    assert_eq!(lines[0].1["assigned_count"], json!(6));
    assert_eq!(lines[1].1["already_assigned_count"], json!(6));
    assert_eq!(lines[4].1["removed_count"], json!(2));
}

#[tokio::test]
async fn every_error_case_of_the_contract() {
    let t = TestStack::start().await;
    let ids = t.seed_instances("err-", 2).await;
    let gone = deleted_instance(&t).await;
    let tag = t.tag("prod").await;
    let off = inactive_tag(&t, "off").await;
    let many_instances: Vec<i64> = (1..=10_001).collect();
    let many_tags: Vec<i64> = (1..=101).collect();
    let at_cap: Vec<i64> = (1..=10_000).collect();

    // Per action: (status, body). The code follows from the status.
    let cases: Vec<(&str, Vec<(u16, Value)>)> = vec![
        (
            "assign",
            vec![
                (400, json!({"instance_ids": [], "tag_ids": [tag]})),
                (400, json!({"instance_ids": [ids[0]], "tag_ids": []})),
                (400, json!({"instance_ids": ["1"], "tag_ids": [tag]})),
                (400, json!({"instance_ids": [1.5], "tag_ids": [tag]})),
                (400, json!({"instance_ids": [ids[0]], "tag_ids": [true]})),
                (400, json!({"instance_ids": [-3], "tag_ids": [tag]})),
                (400, json!({"instance_ids": ids[0], "tag_ids": [tag]})),
                (400, json!({"instance_ids": [ids[0]]})),
                (
                    400,
                    json!({"instance_ids": [ids[0]], "tag_ids": [tag], "x": 1}),
                ),
                (
                    413,
                    json!({"instance_ids": many_instances, "tag_ids": [tag]}),
                ),
                (413, json!({"instance_ids": [ids[0]], "tag_ids": many_tags})),
                (
                    404,
                    json!({"instance_ids": [999_999, gone], "tag_ids": [tag]}),
                ),
                (
                    404,
                    json!({"instance_ids": [ids[0]], "tag_ids": [999_999, off]}),
                ),
            ],
        ),
        (
            "remove",
            vec![
                (400, json!({"instance_ids": [], "tag_ids": [tag]})),
                (
                    413,
                    json!({"instance_ids": many_instances, "tag_ids": [tag]}),
                ),
                (413, json!({"instance_ids": [ids[0]], "tag_ids": many_tags})),
                (404, json!({"instance_ids": [999_999], "tag_ids": [tag]})),
                (404, json!({"instance_ids": [ids[0]], "tag_ids": [999_999]})),
            ],
        ),
        (
            "remove-all",
            vec![
                (400, json!({"instance_ids": []})),
                (400, json!({"instance_ids": ["a"]})),
                (400, json!({"instance_ids": [ids[0]], "tag_ids": [tag]})),
                (413, json!({"instance_ids": many_instances})),
                (404, json!({"instance_ids": [gone]})),
                // At the cap is fine (the ids that do not exist are reported).
                (200, json!({"instance_ids": at_cap})),
            ],
        ),
        (
            "instance-tags",
            vec![
                (400, json!({"instance_ids": []})),
                (400, json!({"instance_ids": [null]})),
                (413, json!({"instance_ids": many_instances})),
                (404, json!({"instance_ids": [999_999]})),
            ],
        ),
    ];
    let expanded = cases
        .into_iter()
        .flat_map(|(action, bodies)| bodies.into_iter().map(move |(s, b)| (action, s, b)));
    for (action, status, body) in expanded {
        let code = match status {
            400 => "VALIDATION_ERROR",
            404 => "NOT_FOUND",
            413 => "PAYLOAD_TOO_LARGE",
            _ => "",
        };
        let role = if action == "instance-tags" {
            Role::Viewer
        } else {
            Role::Operator
        };
        let r = t
            .post(&format!("/tags/bulk/{action}"), role, body.clone())
            .await;
        assert_eq!(
            (r.status, r.code()),
            (status, code),
            "{action} {body}: {r:?}"
        );
    }
    let r = t
        .call(
            reqwest::Method::POST,
            "/tags/bulk/assign",
            Some(OPERATOR),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "MALFORMED_JSON"), "{r:?}");
    let r = t
        .http
        .post(format!("{}/tags/bulk/assign", t.base))
        .bearer_auth(OPERATOR)
        .body("{\"instance_ids\": [1,")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Roles: writes need operator, instance-tags viewer, all need a token.
    let pair = json!({"instance_ids": [ids[0]], "tag_ids": [tag]});
    for action in ["assign", "remove"] {
        let r = t
            .post(&format!("/tags/bulk/{action}"), Role::Viewer, pair.clone())
            .await;
        assert_eq!((r.status, r.code()), (403, "PERMISSION_DENIED"));
    }
    let r = t
        .post(
            "/tags/bulk/remove-all",
            Role::Viewer,
            json!({"instance_ids": [ids[0]]}),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = t
        .call(
            reqwest::Method::POST,
            "/tags/bulk/instance-tags",
            None,
            Some(&json!({"instance_ids": [ids[0]]})),
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "AUTHENTICATION_REQUIRED"));

    // Nothing was written by any failed call.
    assert_eq!(link_count(&t).await, 0);
    let c = t.db.connect().await;
    let audits: i64 =
        tidemark_tests::scalar(&c, "SELECT count(*) FROM event_logs WHERE module = 'tags'").await;
    assert_eq!(audits, 1, "only the successful remove-all is audited");
}

/// Runs each action in a transaction through the counting wrapper; returns the statements
/// each sent, in the order assign, instance-tags, remove, remove-all.
async fn statements_for(t: &TestStack, instances: &[i64], tags: &[i64]) -> Vec<usize> {
    let mut client = t.stack.app.db.get().await.unwrap();
    let mut sent = Vec::new();
    let n = instances.len() as u64;
    let k = tags.len() as u64;

    let tx = client.transaction().await.unwrap();
    let db = Counted::new(&tx);
    let a = bulk::assign(
        &db,
        PairsOf {
            who: "test",
            instance_ids: instances,
            tag_ids: tags,
        },
    )
    .await
    .unwrap();
    assert_eq!((a.assigned_count, a.already_assigned_count), (n * k, 0));
    sent.push(db.sent());
    tx.commit().await.unwrap();

    let tx = client.transaction().await.unwrap();
    let db = Counted::new(&tx);
    let l = bulk::instance_tags(&db, "test", instances).await.unwrap();
    let listed = l.tags.as_array().unwrap();
    assert_eq!(listed.len(), tags.len());
    assert_eq!(
        listed[0]["instance_ids"].as_array().unwrap().len(),
        instances.len()
    );
    sent.push(db.sent());
    tx.commit().await.unwrap();

    let tx = client.transaction().await.unwrap();
    let db = Counted::new(&tx);
    let r = bulk::remove(
        &db,
        PairsOf {
            who: "test",
            instance_ids: instances,
            tag_ids: &tags[..1],
        },
    )
    .await
    .unwrap();
    assert_eq!(r.removed_count, n);
    sent.push(db.sent());
    tx.commit().await.unwrap();

    let tx = client.transaction().await.unwrap();
    let db = Counted::new(&tx);
    let r = bulk::remove_all(&db, "test", instances).await.unwrap();
    assert_eq!(r.removed_count, n * (k - 1));
    sent.push(db.sent());
    tx.commit().await.unwrap();
    sent
}

#[tokio::test]
async fn statements_sent_do_not_depend_on_the_number_of_instances() {
    let t = TestStack::start().await;
    let ids = t.seed_instances("n-", 5_000).await;
    let mut tags = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        tags.push(t.tag(name).await);
    }
    let small = statements_for(&t, &ids[..10], &tags).await;
    let large = statements_for(&t, &ids, &tags).await;
    assert_eq!(small, large, "statements for 10 vs 5,000 instances");
    // assign/remove/remove-all: lock + write + audit; instance-tags: one grouped query + audit.
    assert_eq!(small, vec![3, 2, 3, 3]);
    // Fewer tags change nothing either.
    let one_tag = statements_for(&t, &ids[..10], &tags[..2]).await;
    assert_eq!(one_tag, small);
}

#[tokio::test]
async fn overlapping_assigns_at_the_same_time_never_fail_or_duplicate() {
    let t = TestStack::start().await;
    let ids = t.seed_instances("c-", 200).await;
    let mut tags = Vec::new();
    for name in ["t1", "t2", "t3", "t4"] {
        tags.push(t.tag(name).await);
    }
    // Eight callers over overlapping windows of instances and tags, in different orders.
    let calls: Vec<(Vec<i64>, Vec<i64>)> = (0..8)
        .map(|k| {
            let mut inst: Vec<i64> = ids[k * 20..k * 20 + 60].to_vec();
            if k % 2 == 1 {
                inst.reverse();
            }
            let tg = vec![tags[k % 4], tags[(k + 1) % 4]];
            (inst, tg)
        })
        .collect();
    let expected: BTreeSet<(i64, i64)> = calls
        .iter()
        .flat_map(|(i, g)| i.iter().flat_map(move |i| g.iter().map(move |g| (*i, *g))))
        .collect();
    let results = futures::future::join_all(calls.iter().map(|(i, g)| {
        t.post(
            "/tags/bulk/assign",
            Role::Operator,
            json!({"instance_ids": i, "tag_ids": g}),
        )
    }))
    .await;
    let mut assigned = 0;
    for r in &results {
        assert_eq!(r.status, 200, "{r:?}");
        assigned += r.data()["assigned_count"].as_i64().unwrap();
        let total = r.data()["assigned_count"].as_i64().unwrap()
            + r.data()["already_assigned_count"].as_i64().unwrap();
        assert_eq!(total, 120);
    }
    assert_eq!(assigned as usize, expected.len(), "each pair counted once");
    assert_eq!(link_count(&t).await as usize, expected.len());
}

#[tokio::test]
async fn assign_racing_remove_all_ends_as_one_of_the_two_orders() {
    let t = TestStack::start().await;
    let ids = t.seed_instances("r-", 300).await;
    let a = t.tag("a").await;
    let b = t.tag("b").await;
    let c = t.db.connect().await;
    for round in 0..10 {
        // Start: every instance carries `a`; then assign {a, b} and remove-all race.
        c.execute(
            "INSERT INTO instance_tags (instance_id, tag_id) SELECT unnest($1::bigint[]), $2 \
             ON CONFLICT DO NOTHING",
            &[&ids, &a],
        )
        .await
        .unwrap();
        let assign = t.post(
            "/tags/bulk/assign",
            Role::Operator,
            json!({"instance_ids": ids, "tag_ids": [a, b]}),
        );
        let remove_all = t.post(
            "/tags/bulk/remove-all",
            Role::Operator,
            json!({"instance_ids": ids}),
        );
        let (ra, rr) = tokio::join!(assign, remove_all);
        assert_eq!((ra.status, rr.status), (200, 200), "{ra:?} {rr:?}");
        let n = ids.len() as i64;
        let links = link_count(&t).await;
        let assigned = ra.data()["assigned_count"].as_i64().unwrap();
        let removed = rr.data()["removed_count"].as_i64().unwrap();
        if links == 0 {
            // assign, then remove-all.
            assert_eq!((assigned, removed), (n, 2 * n), "round {round}");
        } else {
            // remove-all, then assign.
            assert_eq!(links, 2 * n, "round {round}: a mixed state");
            assert_eq!((assigned, removed), (2 * n, n), "round {round}");
        }
        c.execute("DELETE FROM instance_tags", &[]).await.unwrap();
    }
}

#[tokio::test]
async fn an_instance_with_two_matching_tags_is_listed_once() {
    let t = TestStack::start().await;
    let ids = t.seed_instances("list-", 3).await;
    let prod = t.tag("prod").await;
    let eu = t.tag("eu").await;
    let r = t
        .post(
            "/tags/bulk/assign",
            Role::Operator,
            json!({"instance_ids": [ids[0]], "tag_ids": [prod, eu]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = t
        .post(
            "/tags/bulk/assign",
            Role::Operator,
            json!({"instance_ids": [ids[1]], "tag_ids": [eu]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");

    let r = t
        .get(
            "/instances?tag=prod&tag=eu&include_total=true&sort=id&order=asc",
            Role::Viewer,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.ids(), vec![ids[0], ids[1]]);
    assert_eq!(r.data()["total"], json!(2));
    let r = t
        .get(
            "/instances?tag=prod,eu&tag_mode=all&include_total=true",
            Role::Viewer,
        )
        .await;
    assert_eq!(r.ids(), vec![ids[0]]);
    assert_eq!(r.data()["total"], json!(1));
}
