//! Exports: CSV streamed from PostgreSQL into S3 multipart uploads, handed out as presigned
//! links (functions `api-exports`, `export-worker`). The API never returns the file inline:
//! it records a job, queues it, and presigns a link when the job is completed.
//!
//! - `api`: the handlers; `kinds`: what can be exported and how each is queried and written;
//! - `worker`: one job from claim to completed upload; `upload`: one S3 multipart upload;
//! - `cells`: CSV cells; `expire`: retention and clean-up, run by maintenance.

pub mod api;
pub mod cells;
pub mod expire;
pub mod kinds;
pub mod upload;
pub mod worker;

pub use expire::expire;
pub use kinds::Kind;
pub use worker::process;

crate::text_enum! {
    /// Where an export job is.
    pub enum Status {
        Queued = "queued", Running = "running", Completed = "completed", Failed = "failed",
    }
}
