//! The in-process queue: the semantics collection relies on from SQS FIFO — never two
//! messages of one group (`host:port`) in flight, at most `concurrency` in total — and a
//! plain worker pool for exports. A message whose handler errors is retried (at least once
//! delivery, like SQS) a few times with backoff.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tidemark::queue::{CollectMessage, ExportMessage, Queue};
use tidemark::App;
use tokio::sync::{mpsc, Semaphore};

const ATTEMPTS: u32 = 3;

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

#[async_trait]
impl Queue for LocalQueue {
    async fn send_collect(&self, messages: Vec<CollectMessage>) -> anyhow::Result<()> {
        for m in messages {
            self.tx
                .send(Work::Collect(m))
                .map_err(|_| anyhow::anyhow!("local queue stopped"))?;
        }
        Ok(())
    }
    async fn send_export(&self, message: ExportMessage) -> anyhow::Result<()> {
        self.tx
            .send(Work::Export(message))
            .map_err(|_| anyhow::anyhow!("local queue stopped"))
    }
}

/// Runs the consumers until the sender side is dropped.
pub fn spawn_workers(app: App, rx: Receiver, concurrency: usize) {
    tokio::spawn(run(app, rx.0, concurrency.max(1)));
}

async fn run(app: App, mut rx: mpsc::UnboundedReceiver<Work>, concurrency: usize) {
    let mut waiting: HashMap<String, VecDeque<CollectMessage>> = HashMap::new();
    // Groups in arrival order, so no group starves.
    let mut order: VecDeque<String> = VecDeque::new();
    let mut busy: HashSet<String> = HashSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let exports = Arc::new(Semaphore::new(2));
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
            let app = app.clone();
            let done = done_tx.clone();
            tokio::spawn(async move {
                deliver(|| tidemark::collect::process(&app, &msg), "collect").await;
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
                    let app = app.clone();
                    let permits = exports.clone();
                    tokio::spawn(async move {
                        let _permit = permits.acquire().await;
                        deliver(|| tidemark::exports::process(&app, &m), "export").await;
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

async fn deliver<F, Fut>(f: F, what: &str)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for attempt in 1..=ATTEMPTS {
        match f().await {
            Ok(()) => return,
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %format!("{e:#}"), attempt, "{what} message failed; redelivering");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "{what} message failed {ATTEMPTS} times; dropped")
            }
        }
    }
}
