//! Tag bulk actions (function `tags-bulk`).
//!
//! Each action is one transaction with a constant number of set-based statements whatever
//! the number of instances and tags: one statement resolves (and, for writes, locks) the
//! requested instances and tags, one statement writes every pair at once, one writes the
//! audit line. Nothing loops over instances or pairs against the database.
//!
//! Concurrency: write actions lock the instance rows they touch (`FOR NO KEY UPDATE`, in id
//! order, so two bulk calls never deadlock) in a statement of their own before writing.
//! Bulk calls on overlapping instances therefore run one after the other, and the write
//! statement's snapshot, taken after the lock is granted, sees everything the previous call
//! committed: an assign racing a remove-all ends as one of the two orders would leave it.
//! Tags are locked `FOR KEY SHARE` so a tag delete cannot slip between check and insert.

use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::values::{id_list, missing};
pub use crate::web::sql::Counted;
use crate::web::{ApiError, ApiResponse, ApiResult, Audit, Req};
use crate::App;

/// Up to 10,000 instance ids and 100 tag ids per call (413 above).
pub const MAX_INSTANCE_IDS: usize = 10_000;
pub const MAX_TAG_IDS: usize = 100;

/// The `bulk` event line, in the caller's transaction.
async fn audit<C: GenericClient>(
    db: &Counted<'_, C>,
    who: &str,
    action: &str,
    counts: Value,
) -> Result<(), ApiError> {
    let mut context = json!({"who": who, "action": action});
    if let (Some(c), Some(extra)) = (context.as_object_mut(), counts.as_object()) {
        c.extend(extra.clone());
    }
    crate::events::record(
        db.counted(),
        "INFO",
        "tags",
        &format!("bulk {action}"),
        context,
    )
    .await?;
    Ok(())
}

/// Locks the non-deleted instances and the active tags among the requested ids; returns
/// the ids found (sorted).
const LOCK_INSTANCES_AND_TAGS: &str = "SELECT \
    ARRAY(SELECT id FROM instances WHERE id = ANY($1::bigint[]) AND deleted_at IS NULL \
          ORDER BY id FOR NO KEY UPDATE), \
    ARRAY(SELECT id FROM tags WHERE id = ANY($2::bigint[]) AND is_active \
          ORDER BY id FOR KEY SHARE)";

const LOCK_INSTANCES: &str = "SELECT \
    ARRAY(SELECT id FROM instances WHERE id = ANY($1::bigint[]) AND deleted_at IS NULL \
          ORDER BY id FOR NO KEY UPDATE)";

/// Every pair of the found instances and tags in one statement; existing pairs are skipped.
const INSERT_PAIRS: &str = "INSERT INTO instance_tags (instance_id, tag_id) \
    SELECT i.id, t.id FROM unnest($1::bigint[]) AS i(id) CROSS JOIN unnest($2::bigint[]) AS t(id) \
    ON CONFLICT DO NOTHING";

const DELETE_PAIRS: &str =
    "DELETE FROM instance_tags WHERE instance_id = ANY($1::bigint[]) AND tag_id = ANY($2::bigint[])";

const DELETE_ALL: &str = "DELETE FROM instance_tags WHERE instance_id = ANY($1::bigint[])";

/// The union of the tags of the requested (non-deleted) instances, each with the instance
/// ids that carry it, grouped in SQL.
const INSTANCE_TAGS: &str = "WITH inst AS ( \
        SELECT id FROM instances WHERE id = ANY($1::bigint[]) AND deleted_at IS NULL) \
    SELECT ARRAY(SELECT id FROM inst ORDER BY id), \
      COALESCE((SELECT json_agg(json_build_object('id', t.id, 'name', t.name, \
          'display_name', t.display_name, 'category', t.category, 'is_active', t.is_active, \
          'instance_count', g.n, 'instance_ids', g.ids) ORDER BY t.name) \
        FROM (SELECT it.tag_id, count(*) AS n, array_agg(it.instance_id ORDER BY it.instance_id) AS ids \
              FROM instance_tags it JOIN inst ON inst.id = it.instance_id GROUP BY it.tag_id) g \
        JOIN tags t ON t.id = g.tag_id), '[]'::json)";

fn none_exist(field: &str, what: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("none of the {what} exist"),
    )
    .with_field(field)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assigned {
    pub assigned_count: u64,
    pub already_assigned_count: u64,
    pub missing_instance_ids: Vec<i64>,
    pub missing_tag_ids: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub removed_count: u64,
    pub missing_instance_ids: Vec<i64>,
    pub missing_tag_ids: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedAll {
    pub removed_count: u64,
    pub missing_instance_ids: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceTags {
    /// Each tag once, with `instance_ids` (and `instance_count`) of the instances carrying it.
    pub tags: Value,
    pub missing_instance_ids: Vec<i64>,
}

/// Resolves (and locks) instances and tags: the found ids, or 404 when none exist.
async fn lock_both<C: GenericClient>(
    db: &Counted<'_, C>,
    instance_ids: &[i64],
    tag_ids: &[i64],
) -> Result<(Vec<i64>, Vec<i64>), ApiError> {
    let row = db
        .counted()
        .query_one(LOCK_INSTANCES_AND_TAGS, &[&instance_ids, &tag_ids])
        .await?;
    let (instances, tags): (Vec<i64>, Vec<i64>) = (row.try_get(0)?, row.try_get(1)?);
    if instances.is_empty() {
        return Err(none_exist("instance_ids", "instances"));
    }
    if tags.is_empty() {
        return Err(none_exist("tag_ids", "tags"));
    }
    Ok((instances, tags))
}

/// What one pair statement did: the rows it changed among the found instances and tags.
struct Pairs {
    changed: u64,
    instances: usize,
    tags: usize,
    missing_instance_ids: Vec<i64>,
    missing_tag_ids: Vec<i64>,
}

impl Pairs {
    /// The audit line's counts, plus the action's own.
    fn context(&self, counts: Value) -> Value {
        let mut context = json!({"instances": self.instances, "tags": self.tags,
            "missing_instances": self.missing_instance_ids.len(),
            "missing_tags": self.missing_tag_ids.len()});
        if let (Some(c), Some(extra)) = (context.as_object_mut(), counts.as_object()) {
            c.extend(extra.clone());
        }
        context
    }
}

/// An assign or remove: who asks (for the audit line), and the instances and tags whose
/// every found pair it changes.
#[derive(Debug, Clone, Copy)]
pub struct PairsOf<'a> {
    pub who: &'a str,
    pub instance_ids: &'a [i64],
    pub tag_ids: &'a [i64],
}

/// Validates the id lists, locks what exists and runs `statement` (`$1` instances, `$2`
/// tags) over every found pair.
async fn on_pairs<C: GenericClient>(
    db: &Counted<'_, C>,
    ids: PairsOf<'_>,
    statement: &str,
) -> Result<Pairs, ApiError> {
    let instance_ids = id_list("instance_ids", ids.instance_ids, MAX_INSTANCE_IDS)?;
    let tag_ids = id_list("tag_ids", ids.tag_ids, MAX_TAG_IDS)?;
    let (instances, tags) = lock_both(db, &instance_ids, &tag_ids).await?;
    let changed = db
        .counted()
        .execute(statement, &[&instances, &tags])
        .await?;
    Ok(Pairs {
        changed,
        instances: instances.len(),
        tags: tags.len(),
        missing_instance_ids: missing(&instance_ids, &instances),
        missing_tag_ids: missing(&tag_ids, &tags),
    })
}

/// Links every found instance to every found tag. `db` should wrap a transaction.
pub async fn assign<C: GenericClient>(
    db: &Counted<'_, C>,
    ids: PairsOf<'_>,
) -> Result<Assigned, ApiError> {
    let p = on_pairs(db, ids, INSERT_PAIRS).await?;
    // The instances are locked, so no other bulk call changed their links in between.
    let pairs = (p.instances * p.tags) as u64;
    let counts = json!({"assigned_count": p.changed,
        "already_assigned_count": pairs.saturating_sub(p.changed)});
    audit(db, ids.who, "assign", p.context(counts)).await?;
    Ok(Assigned {
        assigned_count: p.changed,
        already_assigned_count: pairs.saturating_sub(p.changed),
        missing_instance_ids: p.missing_instance_ids,
        missing_tag_ids: p.missing_tag_ids,
    })
}

/// Unlinks every found tag from every found instance. `db` should wrap a transaction.
pub async fn remove<C: GenericClient>(
    db: &Counted<'_, C>,
    ids: PairsOf<'_>,
) -> Result<Removed, ApiError> {
    let p = on_pairs(db, ids, DELETE_PAIRS).await?;
    let counts = json!({"removed_count": p.changed});
    audit(db, ids.who, "remove", p.context(counts)).await?;
    Ok(Removed {
        removed_count: p.changed,
        missing_instance_ids: p.missing_instance_ids,
        missing_tag_ids: p.missing_tag_ids,
    })
}

/// The instances of a remove-all or instance-tags call that exist.
struct Found {
    /// The validated ids asked for.
    asked: Vec<i64>,
    /// The first column of `statement`'s row: the ids that exist.
    instances: Vec<i64>,
    row: tokio_postgres::Row,
}

/// Validates `instance_ids` and runs `statement` (`$1` the ids) for its one row; none of
/// them existing is an error.
async fn found_instances<C: GenericClient>(
    db: &Counted<'_, C>,
    instance_ids: &[i64],
    statement: &str,
) -> Result<Found, ApiError> {
    let asked = id_list("instance_ids", instance_ids, MAX_INSTANCE_IDS)?;
    let row = db.counted().query_one(statement, &[&asked]).await?;
    let instances: Vec<i64> = row.try_get(0)?;
    if instances.is_empty() {
        return Err(none_exist("instance_ids", "instances"));
    }
    Ok(Found {
        asked,
        instances,
        row,
    })
}

/// Unlinks every tag from every found instance. `db` should wrap a transaction.
pub async fn remove_all<C: GenericClient>(
    db: &Counted<'_, C>,
    who: &str,
    instance_ids: &[i64],
) -> Result<RemovedAll, ApiError> {
    let found = found_instances(db, instance_ids, LOCK_INSTANCES).await?;
    let removed = db
        .counted()
        .execute(DELETE_ALL, &[&found.instances])
        .await?;
    let out = RemovedAll {
        removed_count: removed,
        missing_instance_ids: missing(&found.asked, &found.instances),
    };
    audit(
        db,
        who,
        "remove-all",
        json!({"instances": found.instances.len(), "removed_count": out.removed_count,
               "missing_instances": out.missing_instance_ids.len()}),
    )
    .await?;
    Ok(out)
}

/// The union of the tags of the found instances. `db` should wrap a transaction (the audit
/// line goes with it).
pub async fn instance_tags<C: GenericClient>(
    db: &Counted<'_, C>,
    who: &str,
    instance_ids: &[i64],
) -> Result<InstanceTags, ApiError> {
    let Found {
        asked,
        instances,
        row,
    } = found_instances(db, instance_ids, INSTANCE_TAGS).await?;
    let out = InstanceTags {
        missing_instance_ids: missing(&asked, &instances),
        tags: row.try_get(1)?,
    };
    audit(
        db,
        who,
        "instance-tags",
        json!({"instances": instances.len(),
               "tags": out.tags.as_array().map_or(0, Vec::len),
               "missing_instances": out.missing_instance_ids.len()}),
    )
    .await?;
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PairsBody {
    instance_ids: Vec<i64>,
    tag_ids: Vec<i64>,
}

impl PairsBody {
    fn pairs<'a>(&'a self, who: &'a str) -> PairsOf<'a> {
        PairsOf {
            who,
            instance_ids: &self.instance_ids,
            tag_ids: &self.tag_ids,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstancesBody {
    instance_ids: Vec<i64>,
}

/// The routes: each parses its body and runs its action in its own transaction, logging how
/// many statements it sent.
macro_rules! bulk_routes {
    ($($route:ident $action:literal $body:ty, |$db:ident, $who:ident, $b:ident| $call:expr;)+) => {$(
        pub async fn $route(app: &App, req: Req) -> ApiResult {
            let $b: $body = req.json()?;
            let $who = &req.principal.subject;
            let mut client = app.db.get().await?;
            let tx = client.transaction().await?;
            let $db = Counted::new(&tx);
            let out = $call.await?;
            let statements = $db.sent();
            tx.commit().await?;
            tracing::info!(action = $action, statements, "tags bulk action");
            // instance-tags only reads: no audit entry; the others' entry carries the
            // action's counts (one entry, however many pairs).
            let audit = if $action == "instance-tags" {
                Audit::skip()
            } else {
                let counts = serde_json::to_value(&out).map_err(ApiError::internal)?;
                counts.as_object().into_iter().flatten().fold(Audit::default(), |a, (k, v)| {
                    match v.as_u64() {
                        Some(n) => a.count(k, n as usize),
                        None => a,
                    }
                })
            };
            Ok(ApiResponse::ok(out).audit(audit))
        }
    )+};
}

bulk_routes! {
    assign_route "assign" PairsBody, |db, who, b| assign(&db, b.pairs(who));
    remove_route "remove" PairsBody, |db, who, b| remove(&db, b.pairs(who));
    remove_all_route "remove-all" InstancesBody, |db, who, b| remove_all(&db, who, &b.instance_ids);
    instance_tags_route "instance-tags" InstancesBody,
        |db, who, b| instance_tags(&db, who, &b.instance_ids);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_is_the_sorted_difference() {
        assert_eq!(missing(&[1, 2, 3, 5, 8], &[2, 5, 7]), vec![1, 3, 8]);
        assert_eq!(missing(&[1, 2], &[]), vec![1, 2]);
        assert!(missing(&[4], &[1, 4, 9]).is_empty());
    }

    #[test]
    fn id_lists_are_validated_before_any_statement() {
        assert_eq!(id_list("tag_ids", &[], 100).unwrap_err().status, 400);
        assert_eq!(id_list("tag_ids", &[0], 100).unwrap_err().status, 400);
        let many: Vec<i64> = (1..=101).collect();
        assert_eq!(id_list("tag_ids", &many, 100).unwrap_err().status, 413);
        assert_eq!(id_list("tag_ids", &[3, 1, 3], 100).unwrap(), vec![1, 3]);
    }
}
