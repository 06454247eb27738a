//! Watches the adapters directory and reconciles it when it changes.
//!
//! File events (inotify on Linux) trigger a reconcile once the directory has been
//! quiet for [`SETTLE`], so a file copied in place is read after its last write, not
//! halfway. A periodic rescan catches what events miss (network filesystems, a
//! watcher that could not start); it only stats files, so it is cheap.

use std::{sync::Arc, time::Duration};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::lifecycle::AdapterLifecycle;

/// Quiet time after the last event before the directory is read.
pub const SETTLE: Duration = Duration::from_millis(50);

/// Runs until `shutdown` resolves. `rescan` is the polling interval (`None`: events
/// only).
pub async fn watch(
    lifecycle: Arc<AdapterLifecycle>,
    rescan: Option<Duration>,
    shutdown: impl Future<Output = ()>,
) {
    let (events_tx, mut events) = mpsc::unbounded_channel::<()>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            Ok(event) => event.paths.iter().any(|path| {
                path.extension()
                    .is_some_and(|ext| ext == "wasm" || ext == "toml")
            }),
            // Overflowed or failed: reconcile to be safe.
            Err(_) => true,
        };
        if relevant {
            let _ = events_tx.send(());
        }
    })
    .and_then(|mut watcher| {
        watcher.watch(lifecycle.dir(), RecursiveMode::NonRecursive)?;
        Ok(watcher)
    });
    let _watcher = match watcher {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::warn!(dir = %lifecycle.dir().display(), %error, "cannot watch the adapters directory; relying on the periodic rescan");
            None
        }
    };
    let mut ticker = rescan.map(|every| {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            Some(()) = events.recv() => {
                // Let a burst of writes finish.
                while let Ok(Some(())) = tokio::time::timeout(SETTLE, events.recv()).await {}
            }
            _ = tick(&mut ticker) => {}
        }
        if let Err(error) = lifecycle.reconcile(false).await {
            tracing::error!(%error, "reconciling the adapters directory failed");
        }
    }
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}
