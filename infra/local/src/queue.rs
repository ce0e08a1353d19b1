//! The in-process queue: the semantics collection relies on from SQS FIFO — never two
//! messages of one group (`host:port`) in flight, at most `concurrency` in total — and a
//! plain worker pool for exports. Sends are checked against SQS's limits (group id, batch
//! size, message size) so tests see what AWS would reject. A message whose handler errors
//! or panics is redelivered with backoff (at least once delivery, like SQS), then dropped
//! and logged; the workers keep running. The queue lives in memory: `requeue` at start hands
//! back what the database says is unfinished (docs/local-queue.md).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tidemark::queue::{check_batch, CollectMessage, ExportMessage, Queue, MAX_BATCH_ENTRIES};
use tidemark::App;
use tokio::sync::{mpsc, Semaphore};

/// Waits before each redelivery: 1 + 2 + 4 + 8 + 16 = 31 s in all before a message is
/// dropped, so a PostgreSQL restart of a few seconds ends with the work done.
pub const BACKOFF: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];

/// Exports run at once.
const EXPORT_WORKERS: usize = 2;

type Handled = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;
type Handler<M> = Arc<dyn Fn(M) -> Handled + Send + Sync>;

/// What the workers run for each kind of message, and how they wait between attempts.
#[derive(Clone)]
pub struct Handlers {
    pub collect: Handler<CollectMessage>,
    pub export: Handler<ExportMessage>,
    pub backoff: Vec<Duration>,
}

impl Handlers {
    /// The service's handlers: collection bounded by `TIDEMARK_VISIT_TIMEOUT_SECS`, exports.
    pub fn app(app: App) -> Handlers {
        let collect_app = app.clone();
        Handlers {
            collect: Arc::new(move |m: CollectMessage| {
                let app = collect_app.clone();
                Box::pin(async move {
                    let budget = tidemark::collect::visit_budget(&app.config, None);
                    tidemark::collect::process(&app, &m, budget).await
                })
            }),
            export: Arc::new(move |m: ExportMessage| {
                let app = app.clone();
                Box::pin(async move { tidemark::exports::process(&app, &m).await })
            }),
            backoff: BACKOFF.to_vec(),
        }
    }
}

enum Work {
    Collect(CollectMessage),
    Export(ExportMessage),
}

#[derive(Clone)]
pub struct LocalQueue {
    tx: mpsc::UnboundedSender<Work>,
}

pub struct Receiver(mpsc::UnboundedReceiver<Work>);

pub fn channel() -> (LocalQueue, Receiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    (LocalQueue { tx }, Receiver(rx))
}

impl LocalQueue {
    /// One `SendMessageBatch`: refused whole, as SQS would, past 10 entries, 256 KiB or a bad
    /// group id.
    pub fn send_batch(&self, messages: Vec<CollectMessage>) -> anyhow::Result<()> {
        let bodies = messages
            .iter()
            .map(|m| Ok((m.group(), serde_json::to_string(m)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let entries: Vec<(Option<&str>, &str)> = bodies
            .iter()
            .map(|(g, b)| (Some(g.as_str()), b.as_str()))
            .collect();
        check_batch(&entries)?;
        for m in messages {
            self.push(Work::Collect(m))?;
        }
        Ok(())
    }

    fn push(&self, work: Work) -> anyhow::Result<()> {
        self.tx
            .send(work)
            .map_err(|_| anyhow::anyhow!("local queue stopped"))
    }
}

#[async_trait]
impl Queue for LocalQueue {
    /// In batches of 10, like the SQS queue.
    async fn send_collect(&self, messages: Vec<CollectMessage>) -> anyhow::Result<()> {
        let mut messages = messages.into_iter().peekable();
        while messages.peek().is_some() {
            self.send_batch(messages.by_ref().take(MAX_BATCH_ENTRIES).collect())?;
        }
        Ok(())
    }
    async fn send_export(&self, message: ExportMessage) -> anyhow::Result<()> {
        tidemark::queue::check_message(None, &serde_json::to_string(&message)?)?;
        self.push(Work::Export(message))
    }
}

/// Runs the consumers until the sender side is dropped.
pub fn spawn_workers(handlers: Handlers, rx: Receiver, concurrency: usize) {
    tokio::spawn(run(handlers, rx.0, concurrency.max(1)));
}

async fn run(handlers: Handlers, mut rx: mpsc::UnboundedReceiver<Work>, concurrency: usize) {
    let mut waiting: HashMap<String, VecDeque<CollectMessage>> = HashMap::new();
    // Groups in arrival order, so no group starves.
    let mut order: VecDeque<String> = VecDeque::new();
    let mut busy: HashSet<String> = HashSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let exports = Arc::new(Semaphore::new(EXPORT_WORKERS));
    let mut in_flight = 0usize;
    loop {
        // Start what the bounds allow.
        while in_flight < concurrency {
            let Some(pos) = order.iter().position(|g| !busy.contains(g)) else {
                break;
            };
            let Some(group) = order.remove(pos) else {
                break;
            };
            let Some(msg) = waiting.get_mut(&group).and_then(VecDeque::pop_front) else {
                continue;
            };
            if waiting.get(&group).is_some_and(|q| !q.is_empty()) {
                order.push_back(group.clone());
            } else {
                waiting.remove(&group);
            }
            busy.insert(group.clone());
            in_flight += 1;
            let done = done_tx.clone();
            let (handle, backoff) = (handlers.collect.clone(), handlers.backoff.clone());
            tokio::spawn(async move {
                deliver(&*handle, msg, &backoff, "collect").await;
                // Always reached: `deliver` contains a handler's panic.
                let _ = done.send(group);
            });
        }
        tokio::select! {
            work = rx.recv() => match work {
                None => break,
                Some(Work::Collect(m)) => {
                    let group = m.group();
                    if !waiting.contains_key(&group) && !order.contains(&group) {
                        order.push_back(group.clone());
                    }
                    waiting.entry(group).or_default().push_back(m);
                }
                Some(Work::Export(m)) => {
                    let permits = exports.clone();
                    let (handle, backoff) = (handlers.export.clone(), handlers.backoff.clone());
                    tokio::spawn(async move {
                        let _permit = permits.acquire().await;
                        deliver(&*handle, m, &backoff, "export").await;
                    });
                }
            },
            Some(group) = done_rx.recv() => {
                busy.remove(&group);
                in_flight -= 1;
                if waiting.contains_key(&group) && !order.contains(&group) {
                    order.push_back(group);
                }
            }
        }
    }
}

/// Delivers `msg` until its handler succeeds: once, then once after each `backoff` wait. A
/// panic is a failed attempt (the handler runs in a task of its own, which contains it).
async fn deliver<M: Clone + std::fmt::Debug + Send + 'static>(
    handle: &(dyn Fn(M) -> Handled + Send + Sync),
    msg: M,
    backoff: &[Duration],
    what: &str,
) {
    let attempts = backoff.len() + 1;
    for attempt in 1..=attempts {
        let error = match tokio::spawn(handle(msg.clone())).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => format!("{e:#}"),
            Err(joined) if joined.is_panic() => {
                let panic = joined.into_panic();
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                format!("the handler panicked: {why}")
            }
            Err(_) => "the handler was cancelled".to_string(),
        };
        match backoff.get(attempt - 1) {
            Some(wait) => {
                tracing::warn!(error = %error, attempt, ?wait, ?msg, "{what} message failed; redelivering");
                tokio::time::sleep(*wait).await;
            }
            None => {
                tracing::error!(error = %error, attempts, ?msg, "{what} message failed {attempts} times; dropped")
            }
        }
    }
}

/// At start: what a previous process left unfinished goes back on the queue (the queue was in
/// memory; the database is the record). Runs still being filled are taken as they are; runs
/// whose items are all done are closed; running exports lose their lease (their process is
/// gone). Returns (collection items, exports) queued. One process per database is assumed.
pub async fn requeue(app: &App) -> anyhow::Result<(usize, usize)> {
    let client = app.db.get().await?;
    let runs = client
        .query(
            "UPDATE task_runs SET status = 'running' WHERE status IN ('pending', 'running') \
             AND (task_key IN ($1, $2) OR task_key LIKE $3 || ':%') RETURNING run_id",
            &[
                &tidemark::collect::TASK_KEY,
                &tidemark::collect::now::TASK_KEY,
                &tidemark::tables::REFRESH_TASK_KEY,
            ],
        )
        .await?;
    let today = app.config.business_date(chrono::Utc::now());
    let items = client
        .query(
            "SELECT it.run_id, it.instance_id, i.host, i.port, \
                    (r.summary->>'collected_date')::date AS collected_date, \
                    CASE WHEN r.task_key LIKE $1 || ':%' THEN r.summary->>'database_name' END AS tables_of \
             FROM task_run_items it JOIN task_runs r USING (run_id) \
             JOIN instances i ON i.id = it.instance_id \
             WHERE r.status = 'running' AND it.status IN ('pending', 'running') \
             ORDER BY it.seq",
            &[&tidemark::tables::REFRESH_TASK_KEY],
        )
        .await?;
    let messages = items
        .iter()
        .map(|r| {
            Ok(CollectMessage {
                run_id: r.try_get("run_id")?,
                instance_id: r.try_get("instance_id")?,
                host: r.try_get("host")?,
                port: r.try_get("port")?,
                collected_date: r
                    .try_get::<_, Option<chrono::NaiveDate>>("collected_date")?
                    .unwrap_or(today),
                tables_of: r.try_get("tables_of")?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let exports = client
        .query(
            "WITH orphaned AS (UPDATE export_jobs SET heartbeat_at = NULL \
                               WHERE status = 'running' RETURNING id) \
             SELECT id FROM orphaned UNION ALL \
             SELECT id FROM export_jobs WHERE status = 'queued' ORDER BY 1",
            &[],
        )
        .await?;
    drop(client);
    let items_queued = messages.len();
    app.queue.send_collect(messages).await?;
    for row in &exports {
        app.queue
            .send_export(ExportMessage {
                export_id: row.try_get(0)?,
            })
            .await?;
    }
    // Items may have been closed with no closing run (its step was lost with the process).
    for row in &runs {
        tidemark::tasks::finish_if_done(app, row.try_get(0)?).await?;
    }
    Ok((items_queued, exports.len()))
}
