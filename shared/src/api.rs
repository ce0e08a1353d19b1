//! The route table: every route of `/api/v1` with the role it needs and the Lambda function
//! that serves it (template.yaml wires the same groups). Handlers live in their domain
//! modules; the pipeline around them is `web::router`.

use std::sync::OnceLock;

use crate::web::router::{self, Route};
use crate::web::ApiResponse;
use crate::web::RawRequest;
use crate::App;
use crate::{
    alerts, capacity, checks, collect, credentials, exports, fleet, instances, ledger, route,
    system, tables, tags, tasks,
};

pub fn routes() -> &'static [Route] {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        vec![
            // api-instances: instances, their credentials and the one-instance collection.
            route!(GET "/instances", Viewer, "api-instances", instances::api::list),
            route!(POST "/instances", Operator, "api-instances", instances::api::create),
            route!(GET "/instances/{id}", Viewer, "api-instances", instances::api::get),
            route!(PATCH "/instances/{id}", Operator, "api-instances", instances::api::update),
            route!(DELETE "/instances/{id}", Operator, "api-instances", instances::api::delete),
            route!(POST "/instances/{id}/actions/restore", Operator, "api-instances", instances::api::restore),
            route!(GET "/instances/{id}/databases", Viewer, "api-instances", instances::api::databases),
            route!(POST "/instances/{id}/actions/collect", Operator, "api-instances", collect::collect_now),
            // Onboarding in bulk and connection checks.
            route!(POST "/instances/batch", Operator, "api-instances", instances::batch::batch),
            route!(POST "/instances/import", Operator, "api-instances", instances::batch::import),
            route!(GET "/instances/import/template", Viewer, "api-instances", instances::import::template),
            route!(POST "/instances/actions/batch-delete", Operator, "api-instances", instances::batch::batch_delete),
            route!(POST "/instances/actions/batch-restore", Operator, "api-instances", instances::batch::batch_restore),
            route!(POST "/instances/{id}/actions/check", Operator, "api-instances", checks::check_saved),
            route!(POST "/instances/actions/check", Operator, "api-instances", checks::check_many),
            route!(POST "/connection-checks", Operator, "api-instances", checks::check_unsaved),
            route!(GET "/credentials", Admin, "api-instances", credentials::list),
            route!(POST "/credentials", Admin, "api-instances", credentials::create),
            route!(GET "/credentials/{id}", Admin, "api-instances", credentials::get),
            route!(PATCH "/credentials/{id}", Admin, "api-instances", credentials::update),
            route!(DELETE "/credentials/{id}", Admin, "api-instances", credentials::delete),
            // api-tags
            route!(GET "/tags", Viewer, "api-tags", tags::list),
            route!(POST "/tags", Operator, "api-tags", tags::create),
            route!(GET "/tags/categories", Viewer, "api-tags", tags::categories),
            route!(POST "/tags/actions/batch-delete", Admin, "api-tags", tags::batch_delete),
            route!(GET "/tags/{id}", Viewer, "api-tags", tags::get),
            route!(PATCH "/tags/{id}", Operator, "api-tags", tags::update),
            route!(DELETE "/tags/{id}", Admin, "api-tags", tags::delete),
            // tags-bulk
            route!(POST "/tags/bulk/assign", Operator, "tags-bulk", tags::bulk::assign_route),
            route!(POST "/tags/bulk/remove", Operator, "tags-bulk", tags::bulk::remove_route),
            route!(POST "/tags/bulk/remove-all", Operator, "tags-bulk", tags::bulk::remove_all_route),
            route!(POST "/tags/bulk/instance-tags", Viewer, "tags-bulk", tags::bulk::instance_tags_route),
            // api-databases: the ledger and one database's history.
            route!(GET "/databases/ledger", Viewer, "api-databases", ledger::list),
            route!(GET "/databases/{id}/sizes", Viewer, "api-databases", ledger::sizes),
            // api-databases: table-level capacity.
            route!(GET "/databases/{id}/tables", Viewer, "api-databases", tables::api::list),
            route!(POST "/databases/{id}/actions/refresh-tables", Operator, "api-databases", tables::api::refresh),
            route!(GET "/tables/top", Viewer, "api-databases", tables::api::top),
            route!(GET "/tables/{id}/sizes", Viewer, "api-databases", tables::api::sizes),
            route!(POST "/instances/actions/set-collect-tables", Operator, "api-databases", tables::api::set_collect_tables),
            // api-capacity
            route!(GET "/capacity/databases", Viewer, "api-capacity", capacity::api::databases),
            route!(GET "/capacity/instances", Viewer, "api-capacity", capacity::api::instances),
            route!(GET "/capacity/forecast", Viewer, "api-capacity", capacity::forecast::forecast),
            // api-capacity: capacity alerts (rules, channels, firings, deliveries).
            route!(GET "/alert-rules", Viewer, "api-capacity", alerts::rules::list),
            route!(POST "/alert-rules", Admin, "api-capacity", alerts::rules::create),
            route!(GET "/alert-rules/{id}", Viewer, "api-capacity", alerts::rules::get),
            route!(PATCH "/alert-rules/{id}", Admin, "api-capacity", alerts::rules::update),
            route!(DELETE "/alert-rules/{id}", Admin, "api-capacity", alerts::rules::delete),
            route!(GET "/alert-channels", Admin, "api-capacity", alerts::channels::list),
            route!(POST "/alert-channels", Admin, "api-capacity", alerts::channels::create),
            route!(GET "/alert-channels/{id}", Admin, "api-capacity", alerts::channels::get),
            route!(PATCH "/alert-channels/{id}", Admin, "api-capacity", alerts::channels::update),
            route!(DELETE "/alert-channels/{id}", Admin, "api-capacity", alerts::channels::delete),
            route!(GET "/alerts", Viewer, "api-capacity", alerts::api::list),
            route!(GET "/alerts/{id}", Viewer, "api-capacity", alerts::api::get),
            route!(POST "/alerts/{id}/actions/acknowledge", Operator, "api-capacity", alerts::api::acknowledge),
            route!(GET "/alert-deliveries", Viewer, "api-capacity", alerts::api::deliveries),
            // api-tasks: starting collections and following their runs.
            route!(POST "/collections", Operator, "api-tasks", collect::start),
            route!(POST "/capacity/aggregations", Operator, "api-tasks", capacity::aggregate::start),
            route!(GET "/task-runs", Viewer, "api-tasks", tasks::api::list),
            route!(GET "/task-runs/{run_id}", Viewer, "api-tasks", tasks::api::get),
            route!(GET "/task-runs/{run_id}/items", Viewer, "api-tasks", tasks::api::items),
            route!(POST "/task-runs/{run_id}/actions/cancel", Operator, "api-tasks", tasks::api::cancel),
            // api-exports
            route!(POST "/exports", Viewer, "api-exports", exports::api::create),
            route!(GET "/exports", Viewer, "api-exports", exports::api::list),
            route!(GET "/exports/{id}", Viewer, "api-exports", exports::api::get),
            route!(DELETE "/exports/{id}", Viewer, "api-exports", exports::api::delete),
            // api-system
            route!(GET "/health", public, "api-system", system::health),
            route!(GET "/partitions", Admin, "api-system", system::partitions::list),
            route!(POST "/partitions/actions/ensure", Admin, "api-system", system::partitions::ensure),
            route!(GET "/schedules", Viewer, "api-system", system::list_schedules),
            route!(GET "/me", Viewer, "api-system", fleet::me),
            route!(GET "/fleet/summary", Viewer, "api-system", fleet::summary),
            // api-logs
            route!(GET "/logs", Admin, "api-logs", system::logs),
            route!(GET "/logs/statistics", Admin, "api-logs", system::log_statistics),
            route!(GET "/logs/{id}", Admin, "api-logs", system::log_entry),
        ]
    })
}

/// Serves one request from the table: `function` limits it to that Lambda function's routes
/// (`None`: all of them, the local server).
pub async fn dispatch(app: &App, raw: RawRequest, function: Option<&str>) -> ApiResponse {
    router::dispatch(app, routes(), raw, function).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in routes() {
            assert!(
                seen.insert((r.method.clone(), r.path)),
                "duplicate route {} {}",
                r.method,
                r.path
            );
        }
    }
}
