//! The in-process scheduler: the same daily schedules as EventBridge in AWS.

use tidemark::system::schedules::{schedules, Job};
use tidemark::App;

pub fn spawn(app: App) {
    for schedule in schedules(&app.config) {
        let app = app.clone();
        tokio::spawn(async move {
            loop {
                let now = chrono::Utc::now();
                let next = schedule.next_after(now);
                let wait = (next - now).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                tracing::info!(job = schedule.job.key(), "scheduled job starting");
                let result = match schedule.job {
                    Job::Collect => tidemark::collect::dispatch_scheduled(&app).await,
                    Job::Aggregate => tidemark::capacity::aggregate(&app).await,
                    Job::Maintenance => tidemark::system::maintenance::scheduled(&app).await,
                };
                if let Err(e) = result {
                    tracing::error!(job = schedule.job.key(), error = %format!("{e:#}"), "scheduled job failed");
                }
            }
        });
    }
}
