//! Task runs (function `api-tasks`): the record of every collection run and its items.
//! `run` is their life (used by collection and maintenance), `stale` what a lost worker left,
//! `api` the handlers.

pub mod api;
pub mod jobs;
pub mod run;
pub mod stale;

pub use run::{blocked_line, fail_stale_runs, finish_if_done, metrics_line, ClosedRun};
pub use stale::fail_stale;

crate::text_enum! {
    /// Where a run is.
    pub enum RunStatus {
        Pending = "pending", Running = "running", Completed = "completed",
        CompletedWithErrors = "completed_with_errors", Failed = "failed",
        Cancelled = "cancelled",
    }
}

crate::text_enum! {
    /// Where one item of a run is.
    pub enum ItemStatus {
        Pending = "pending", Running = "running", Completed = "completed", Failed = "failed",
        Cancelled = "cancelled",
    }
}

crate::text_enum! {
    /// What started a run.
    pub enum Trigger {
        Scheduled = "scheduled", Manual = "manual", Api = "api",
    }
}

crate::text_enum! {
    /// What a run does (its `task_key`): at most one unfinished run of each kind.
    pub enum RunKind {
        Collect = "collect_databases", Aggregate = "aggregate_capacity", Maintenance = "maintenance",
    }
}
