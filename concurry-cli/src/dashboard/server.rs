//! The dashboard's HTTP side: the page, its live feed, `/metrics`, and the actions.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/` , `/app.js`, `/app.css` | the page (embedded) |
//! | GET | `/events` | server-sent events: one `snapshot` event (the JSON of [`Snapshot`]) per tick |
//! | GET | `/api/snapshot` | the latest snapshot as JSON |
//! | GET | `/metrics` | Prometheus text: the cluster as the dashboard sees it |
//! | POST | `/api/tasks/{id}/cancel` | cancel a task |
//! | POST | `/api/dlq/{id}/replay` | run a dead letter again |
//! | POST | `/api/nodes/{id}/drain` | drain a node (by its id): its instances move, it leaves |
//!
//! Actions answer 403 unless the dashboard runs with `--allow-actions`, and need the header
//! `X-Concurry-Action: 1` (a page of another site cannot send it without a CORS preflight,
//! which this server does not answer), else 400. Their answer is JSON
//! `{"ok": bool, "message": "..."}`.

use std::convert::Infallible;
use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use concurry::cluster::Cluster;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use serde::Serialize;
use tokio::sync::watch;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::WatchStream;

use super::Args;
use super::snapshot::{Collector, History, Listing, Snapshot, list_loop};
use crate::exit::Failure;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The header an action request must carry.
pub(crate) const ACTION_HEADER: &str = "x-concurry-action";

/// What every request handler shares.
#[derive(Clone)]
struct App {
    cluster: Cluster,
    actions: bool,
    /// The latest snapshot, serialized once for every page.
    feed: watch::Receiver<Arc<str>>,
    /// Asks the task listing for a fresh read now (after an action), which then has the
    /// collector send a fresh snapshot.
    poke: mpsc::Sender<()>,
    metrics: PrometheusHandle,
}

/// Binds `args.listen`, prints the page's address on `out`, and serves until SIGINT or
/// SIGTERM.
pub(super) fn serve(cluster: Cluster, args: &Args, out: &mut dyn Write) -> Result<(), Failure> {
    let listener = std::net::TcpListener::bind(args.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| {
            Failure::Usage(format!(
                "--listen {}: could not listen there ({e}); pick a free port",
                args.listen
            ))
        })?;
    let addr = listener.local_addr()?;
    let metrics = install_recorder(args.interval)?;

    let listing = Arc::new(Mutex::new(Listing::default()));
    let mut collector = Collector {
        cluster: cluster.clone(),
        queue: None,
        actions: args.allow_actions,
        recent: args.recent as usize,
        history: History::default(),
        listing: listing.clone(),
    };
    let first = encode(&collector.collect())?;
    let (tx, feed) = watch::channel(first);
    let (poke, poked) = mpsc::channel();
    let (fresh, freshened) = mpsc::channel();
    let interval = args.interval;
    let recent = args.recent as usize;
    let lister = cluster.clone();
    std::thread::Builder::new()
        .name("concurry-dashboard-tasks".into())
        .spawn(move || list_loop(lister, recent, listing, poked, fresh, interval))?;
    std::thread::Builder::new()
        .name("concurry-dashboard".into())
        .spawn(move || collect_loop(collector, tx, freshened, interval))?;

    let app = App {
        cluster,
        actions: args.allow_actions,
        feed,
        poke,
        metrics,
    };
    let mode = if args.allow_actions {
        "actions enabled: cancel, replay, drain"
    } else {
        "read-only; --allow-actions enables cancel, replay and drain"
    };
    writeln!(out, "concurry dashboard: http://{addr}/ ({mode})")?;
    out.flush()?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let server = axum::serve(listener, router(app));
        tokio::select! {
            r = server => r,
            () = stop_signal() => Ok(()),
        }
    });
    // Open event streams never end by themselves: do not wait for them.
    rt.shutdown_background();
    result.map_err(|e| Failure::Other(format!("the dashboard's server stopped: {e}")))
}

/// The exporter as this process's `metrics` recorder (gauges not set for a few ticks, such
/// as a node that left, drop out of `/metrics`).
fn install_recorder(interval: Duration) -> Result<PrometheusHandle, Failure> {
    let recorder = PrometheusBuilder::new()
        .idle_timeout(
            MetricKindMask::GAUGE,
            Some((interval * 3).max(Duration::from_secs(5))),
        )
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| Failure::Other(format!("could not install the metrics recorder: {e}")))?;
    Ok(handle)
}

/// Reads the cluster every `interval` (or at once when poked) until the server is gone.
fn collect_loop(
    mut collector: Collector,
    tx: watch::Sender<Arc<str>>,
    poked: mpsc::Receiver<()>,
    interval: Duration,
) {
    let mut said: Vec<String> = Vec::new();
    loop {
        match poked.recv_timeout(interval) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let started = std::time::Instant::now();
        let snap = collector.collect();
        // What could not be read goes on stderr too, once until it changes.
        if snap.errors != said {
            for e in &snap.errors {
                eprintln!("concurry dashboard: {e}");
            }
            said.clone_from(&snap.errors);
        }
        if started.elapsed() > interval * 5 {
            eprintln!(
                "concurry dashboard: reading the cluster took {:?}",
                started.elapsed()
            );
        }
        super::gauges::record(&snap);
        match encode(&snap) {
            Ok(json) => {
                if tx.send(json).is_err() {
                    return;
                }
            }
            Err(e) => eprintln!("concurry dashboard: {e}"),
        }
    }
}

fn encode(s: &Snapshot) -> Result<Arc<str>, Failure> {
    Ok(Arc::from(serde_json::to_string(s)?))
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript", APP_JS) }),
        )
        .route("/app.css", get(|| async { asset("text/css", APP_CSS) }))
        .route("/events", get(events))
        .route("/api/snapshot", get(snapshot))
        .route("/metrics", get(prometheus))
        .route("/api/tasks/{id}/cancel", post(cancel))
        .route("/api/dlq/{id}/replay", post(replay))
        .route("/api/nodes/{id}/drain", post(drain))
        .with_state(app)
}

fn asset(kind: &str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, format!("{kind}; charset=utf-8")),
            (header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        body,
    )
        .into_response()
}

async fn events(
    State(app): State<App>,
) -> Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>> {
    let stream = WatchStream::new(app.feed.clone())
        .map(|json| Ok(Event::default().event("snapshot").data(&*json)));
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn snapshot(State(app): State<App>) -> Response {
    let json = app.feed.borrow().clone();
    (
        [(header::CONTENT_TYPE, "application/json")],
        json.to_string(),
    )
        .into_response()
}

async fn prometheus(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

/// An action's answer.
#[derive(Serialize)]
struct Outcome {
    ok: bool,
    message: String,
}

fn answer(status: StatusCode, ok: bool, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(Outcome {
            ok,
            message: message.into(),
        }),
    )
        .into_response()
}

/// None when the action may run, else the refusal.
fn refuse(app: &App, headers: &HeaderMap) -> Option<Response> {
    if !app.actions {
        return Some(answer(
            StatusCode::FORBIDDEN,
            false,
            "actions are disabled: this dashboard is read-only; start it with \
             `concurry dashboard --allow-actions` to cancel tasks, replay dead letters and drain nodes",
        ));
    }
    if headers.get(ACTION_HEADER).is_none_or(|v| v != "1") {
        return Some(answer(
            StatusCode::BAD_REQUEST,
            false,
            "an action needs the header `X-Concurry-Action: 1` (the page sends it)",
        ));
    }
    None
}

/// Runs `f` (the library's calls block) off the server's threads, then asks for a fresh
/// snapshot so every page shows the outcome at once.
async fn act(
    app: &App,
    f: impl FnOnce(&Cluster) -> Result<String, concurry::Error> + Send + 'static,
) -> Response {
    let cluster = app.cluster.clone();
    let done = tokio::task::spawn_blocking(move || f(&cluster)).await;
    let _ = app.poke.send(());
    match done {
        Ok(Ok(message)) => answer(StatusCode::OK, true, message),
        Ok(Err(e)) => answer(StatusCode::BAD_REQUEST, false, e.to_string()),
        Err(e) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            false,
            format!("the action failed: {e}"),
        ),
    }
}

async fn cancel(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse(&app, &headers) {
        return r;
    }
    act(&app, move |c| {
        Ok(if c.cancel(&id)? {
            format!("task {id} cancelled")
        } else {
            format!("task {id} had already finished")
        })
    })
    .await
}

async fn replay(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse(&app, &headers) {
        return r;
    }
    act(&app, move |c| {
        c.tasks()?.replay(&id)?;
        Ok(format!("dead letter {id} replayed"))
    })
    .await
}

async fn drain(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse(&app, &headers) {
        return r;
    }
    act(&app, move |c| {
        c.drain(&id)?;
        Ok(format!("node {id} drains"))
    })
    .await
}

/// Until SIGINT or SIGTERM.
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
