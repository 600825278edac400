//! `concurry dashboard` in a real browser: a `nats-server` (`LocalServer`), a node of this
//! test process with remote tasks, the dashboard binary, and headless Chromium driven over
//! WebDriver (chromedriver, through `fantoccini`). Without Chromium or chromedriver it
//! prints one line and skips, except under `CI=true`, where it fails.
//!
//! The screenshot is written to the test's temporary directory on every run, and to
//! `docs/dashboard.png` (the README's) with `UPDATE_SNAPSHOTS=1`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use concurry::cluster::{Cluster, LocalServer, Node, Submit, TaskStatus};
use fantoccini::{Client, ClientBuilder, Locator};

/// Generous: only catches hangs.
const HANG: Duration = Duration::from_secs(30);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL: &str = "apt-get install -y chromium chromium-driver";

/// Runs when a node fetches it; the test delays them so they stay queued.
#[concurry::task(remote)]
fn render(page: String) -> usize {
    page.len()
}

/// A remote worker type, for a `Mode::Cluster` pool on the node.
struct Echo;

#[concurry::worker(remote)]
impl Echo {
    pub(crate) fn new() -> Self {
        Echo
    }

    pub(crate) fn echo(&self, x: u64) -> u64 {
        x
    }
}

/// How many times `explode` ran (on the node of this process).
static EXPLODED: AtomicUsize = AtomicUsize::new(0);

/// Fails every attempt: a dead letter for the page to show.
#[concurry::task(remote)]
fn explode(why: String) -> usize {
    EXPLODED.fetch_add(1, Ordering::SeqCst);
    panic!("explode: {why}")
}

type Render = render::Task;
type Explode = explode::Task;

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The browser session, ended when dropped during a panic too: chromedriver does not take
/// its Chromium down when it is killed, so a failing test would leave one running.
struct Session(Client);

impl Drop for Session {
    fn drop(&mut self) {
        let c = self.0.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        // The session's task runs on the test's runtime; this waits on a thread of its own.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = tx.send(rt.block_on(c.close()).is_ok());
        });
        let _ = rx.recv_timeout(Duration::from_secs(10));
    }
}

/// The browser's binaries, or None (after one line saying how to install them) when they
/// are missing outside CI.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let find = |fixed: &str, name: &str| {
        let fixed = PathBuf::from(fixed);
        if fixed.exists() {
            return Some(fixed);
        }
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|c| c.exists())
        })
    };
    match (
        find(CHROMIUM, "chromium"),
        find(CHROMEDRIVER, "chromedriver"),
    ) {
        (Some(c), Some(d)) => Some((c, d)),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{INSTALL} (CI=true: the dashboard's browser test must run, not skip)")
        }
        _ => {
            eprintln!("skipped: no chromium/chromedriver; {INSTALL}");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `f` holds (polling every 50 ms), else panics with `what` after [`HANG`].
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < HANG, "{what}: not after {HANG:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `concurry --server url dashboard --listen 127.0.0.1:0 extra...` and reads the
/// address it prints.
fn dashboard(url: &str, extra: &[&str]) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_concurry"))
        .args(["--server", url, "dashboard", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env_remove("CONCURRY_SERVER")
        .env_remove("CONCURRY_NAMESPACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the concurry binary");
    let stdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(HANG)
        .expect("the dashboard prints its address");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches('/')
        .to_string();
    (child, format!("http://{addr}"))
}

/// A bare HTTP/1.1 request (Connection: close); the status code and body.
fn http(method: &str, url: &str, headers: &[&str]) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    let mut req = format!(
        "{method} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n",
        if path.is_empty() { "/" } else { path }
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

/// chromedriver on a free port, answering.
fn chromedriver(driver: &Path) -> (Killed, String) {
    let port = free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run chromedriver");
    let child = Killed(child);
    wait_for("chromedriver answers", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (child, format!("http://127.0.0.1:{port}"))
}

async fn browse(driver: &str, chromium: &Path) -> Client {
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1440,1500"],
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a Chromium session")
}

/// The text of the element `css` ("" while there is none; read again if a render replaced
/// it meanwhile).
async fn text_of(c: &Client, css: &str) -> String {
    for _ in 0..10 {
        match c.find(Locator::Css(css)).await {
            Ok(e) => match e.text().await {
                Ok(t) => return t,
                Err(_) => continue, // stale: found again
            },
            Err(_) => return String::new(),
        }
    }
    String::new()
}

/// Waits until the element `css` reads `want`.
async fn wait_for_text(c: &Client, css: &str, want: &str) {
    let start = Instant::now();
    loop {
        let got = text_of(c, css).await;
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < HANG,
            "{css} reads {got:?}, not {want:?}, after {HANG:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the element `#id`.
async fn text(c: &Client, id: &str) -> String {
    text_of(c, &format!("#{id}")).await
}

/// Waits until `#id`'s text is `want`.
async fn wait_text(c: &Client, id: &str, want: &str) {
    wait_for_text(c, &format!("#{id}"), want).await;
}

/// Clicks the element `css` once it is there (found again if a render replaced it between
/// finding and clicking).
async fn click(c: &Client, css: &str) {
    let start = Instant::now();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && e.click().await.is_ok()
        {
            return;
        }
        assert!(start.elapsed() < HANG, "no {css} to click after {HANG:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the status chip `status` of the task counts reads `count`.
async fn wait_chip(c: &Client, status: &str, count: &str) {
    wait_for_text(c, &format!("#task-counts [data-status={status}] b"), count).await;
}

#[test]
fn the_dashboard_shows_the_cluster_live_and_cancels_from_the_page() {
    let Some(server) = LocalServer::for_tests() else {
        return;
    };
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let url = server.url();
    let node = Node::new(Cluster::connect(&url).unwrap())
        .name("alpha")
        .capacity(4)
        .start()
        .expect("node starts");
    let cluster = Cluster::connect(&url).unwrap();
    cluster.wait_for_nodes(1, HANG).expect("the node shows up");
    let q = cluster.tasks().unwrap();
    let pool = Echo::options()
        .mode(concurry::Mode::Cluster)
        .cluster(cluster.clone())
        .max_workers(2)
        .name("echoes")
        .limits(concurry::LimitSet::new([concurry::ResourceLimit::new("db", 3)]).unwrap())
        .init()
        .expect("a pool on the node");
    assert_eq!(pool.echo(7).result().unwrap(), 7);

    let (_dash, page) = dashboard(&url, &["--allow-actions", "--interval", "200ms"]);
    let (_ro, read_only) = dashboard(&url, &["--interval", "200ms"]);
    let (_driver, webdriver) = chromedriver(&driver);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shot = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(180), async {
            let session = Session(browse(&webdriver, &chromium).await);
            let c = &session.0;
            c.goto(&page).await.unwrap();
            wait_text(c, "live", "live").await;
            wait_text(c, "count-nodes", "1").await;
            wait_text(c, "count-free", "2 / 4").await;
            wait_for_text(c, "#pools tr[data-pool=echoes] .placed", "2 / 2").await;
            wait_for_text(c, "#pools tr[data-pool=echoes] .inflight", "0").await;
            wait_for_text(c, "#limits [data-limit='echoes/db'] .usage", "0 / 3").await;
            wait_text(c, "count-queued", "0").await;
            assert_eq!(text(c, "mode").await, "actions enabled");

            // Submitted elsewhere, shown without a reload: delayed tasks stay queued.
            let later = Submit::new().delay(Duration::from_secs(600));
            let ids: Vec<String> = (0..3)
                .map(|i| {
                    q.submit_with::<Render>((format!("page {i}"),), later.clone())
                        .unwrap()
                        .task_id()
                        .to_string()
                })
                .collect();
            wait_text(c, "count-queued", "3").await;

            // A dead letter, with its replay button.
            let dead = q
                .submit_with::<Explode>(("on purpose".into(),), Submit::new().id("boom-1"))
                .unwrap();
            let _ = dead.result_timeout(HANG);
            wait_text(c, "count-dlq", "1").await;
            wait_for_text(
                c,
                "#dlq button[data-action=replay][data-id=boom-1]",
                "Replay",
            )
            .await;

            // Tasks that run: counted as they finish.
            for i in 0..5 {
                q.submit::<Render>((format!("now {i}"),))
                    .unwrap()
                    .result_timeout(HANG)
                    .unwrap();
            }
            wait_chip(c, "succeeded", "5").await;
            wait_chip(c, "scheduled", "3").await;

            // A cancel from the page (the task's row) reaches the task.
            let target = &ids[1];
            let button = format!("#tasks tr[data-task='{target}'] button[data-action=cancel]");
            click(c, &button).await;
            let start = Instant::now();
            loop {
                if cluster.task_status(target).unwrap() == TaskStatus::Cancelled {
                    break;
                }
                assert!(start.elapsed() < HANG, "the cancel did not reach {target}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            wait_text(c, "toast", &format!("task {target} cancelled")).await;
            // The page follows: the row's status, the counts, no button on a finished task.
            let status = format!("#tasks tr[data-task='{target}'] .status");
            wait_for_text(c, &status, "cancelled").await;
            wait_chip(c, "cancelled", "1").await;
            wait_chip(c, "scheduled", "2").await;
            assert!(
                c.find(Locator::Css(&button)).await.is_err(),
                "a cancelled task has no cancel button"
            );
            assert!(matches!(
                cluster.task_status(&ids[0]).unwrap(),
                TaskStatus::Scheduled { .. }
            ));

            // And by id, with the form.
            let input = c.find(Locator::Id("cancel-id")).await.unwrap();
            input.send_keys(&ids[2]).await.unwrap();
            click(c, "#cancel-by-id").await;
            wait_chip(c, "cancelled", "2").await;
            assert_eq!(cluster.task_status(&ids[2]).unwrap(), TaskStatus::Cancelled);
            tokio::time::sleep(Duration::from_millis(600)).await; // the chart gets points
            c.execute("document.getElementById('toast').hidden = true", vec![])
                .await
                .unwrap();
            let shot = c.screenshot().await.unwrap();

            // A replay from the page: the node runs the dead letter again.
            assert_eq!(EXPLODED.load(Ordering::SeqCst), 1);
            click(c, "#dlq button[data-action=replay][data-id=boom-1]").await;
            wait_text(c, "toast", "dead letter boom-1 replayed").await;
            let start = Instant::now();
            while EXPLODED.load(Ordering::SeqCst) < 2 {
                assert!(
                    start.elapsed() < HANG,
                    "the replayed task did not run again"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }

            // A drain from the page (after a confirmation): the node leaves (once the pool,
            // which has nowhere else to go, is stopped).
            pool.stop().unwrap();
            wait_text(c, "count-free", "4 / 4").await;
            let node_id = node.id();
            let drain = format!("#nodes button[data-action=drain][data-id='{node_id}']");
            let start = Instant::now();
            let alert = loop {
                click(c, &drain).await;
                // (A click that landed as the row was re-rendered asks nothing: again.)
                if let Ok(text) = c.get_alert_text().await {
                    break text;
                }
                assert!(start.elapsed() < HANG, "the drain button asks nothing");
            };
            assert!(
                alert.starts_with(&format!("Drain node {node_id}?")),
                "{alert}"
            );
            c.accept_alert().await.unwrap();
            wait_text(c, "count-nodes", "0").await;

            // Read-only: no action buttons, and no cancel form.
            c.goto(&read_only).await.unwrap();
            wait_text(c, "live", "live").await;
            wait_text(c, "mode", "read-only").await;
            wait_text(c, "count-dlq", "1").await;
            let buttons = c
                .find_all(Locator::Css("button[data-action]"))
                .await
                .unwrap();
            assert!(buttons.is_empty(), "a read-only page shows no actions");
            let form = c.find(Locator::Id("cancel-form")).await.unwrap();
            assert!(!form.is_displayed().await.unwrap());
            drop(session);
            shot
        })
        .await
        .expect("the browser test finished in time")
    });

    // Read-only refuses the actions themselves, not only their buttons.
    let (code, body) = http(
        "POST",
        &format!("{read_only}/api/tasks/{}/cancel", "x1"),
        &["X-Concurry-Action: 1"],
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("--allow-actions"), "{body}");
    // An action without the page's header is refused (no cross-site form posts).
    let (code, body) = http("POST", &format!("{page}/api/dlq/boom-1/replay"), &[]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("X-Concurry-Action"), "{body}");
    // The dashboard's Prometheus text.
    let (code, metrics) = http("GET", &format!("{page}/metrics"), &[]);
    assert_eq!(code, 200);
    assert!(
        metrics.contains("concurry_cluster_nodes 0"),
        "drained: {metrics}"
    );
    assert!(
        metrics.contains("concurry_cluster_dead_letters{queue=\"default\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("concurry_cluster_queue_depth{queue=\"default\",priority=\"normal\"}"),
        "{metrics}"
    );

    assert!(shot.starts_with(b"\x89PNG"), "a PNG screenshot");
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&tmp, &shot).unwrap();
    eprintln!("screenshot: {}", tmp.display());
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/dashboard.png");
        std::fs::create_dir_all(docs.parent().unwrap()).unwrap();
        std::fs::write(docs, &shot).unwrap();
    }
}

#[test]
fn a_non_loopback_listen_needs_public() {
    let out = Command::new(env!("CARGO_BIN_EXE_concurry"))
        .args([
            "--server",
            "nats://127.0.0.1:1",
            "dashboard",
            "--listen",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("concurry: --listen 0.0.0.0:0: not a loopback address")
            && err.contains("--public"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_concurry"))
        .args(["dashboard", "--interval", "10ms"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--interval 10ms: too short"), "{err}");
    // With --public it gets as far as the (unreachable) server: exit 3, after a warning.
    let out = Command::new(env!("CARGO_BIN_EXE_concurry"))
        .args([
            "--server",
            "nats://127.0.0.1:1",
            "dashboard",
            "--listen",
            "0.0.0.0:0",
            "--public",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: serving the dashboard on 0.0.0.0:0"),
        "{err}"
    );
}

/// 10k tasks in view: the page gets their counts and the newest `--recent` rows only.
#[test]
fn ten_thousand_tasks_in_view_stay_a_small_page() {
    let Some(server) = LocalServer::for_tests() else {
        return;
    };
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let url = server.url();
    // No node: the tasks stay pending.
    let q = Cluster::connect(&url).unwrap().tasks().unwrap();
    q.submit_batch::<Render>((0..10_000).map(|i| (format!("page {i}"),)))
        .unwrap();
    let (_dash, page) = dashboard(&url, &["--recent", "100"]);
    let (_driver, webdriver) = chromedriver(&driver);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(180), async {
            let session = Session(browse(&webdriver, &chromium).await);
            let c = &session.0;
            c.goto(&page).await.unwrap();
            wait_text(c, "count-queued", "10,000").await;
            wait_chip(c, "pending", "10,000").await;
            let start = Instant::now();
            loop {
                let rows = c.find_all(Locator::Css("#tasks tbody tr[data-task]")).await;
                if rows.is_ok_and(|r| r.len() == 100) {
                    break;
                }
                assert!(
                    start.elapsed() < HANG,
                    "the newest 100 tasks are not listed"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            wait_for_text(c, "#queues tr[data-queue=default] .depth", "10,000").await;
        })
        .await
        .expect("the page showed 10k tasks in time")
    });
    let (code, body) = http("GET", &format!("{page}/api/snapshot"), &[]);
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["tasks"]["total"], 10_000);
    assert_eq!(doc["tasks"]["recent"].as_array().unwrap().len(), 100);
    eprintln!("a snapshot with 10k tasks in view: {} bytes", body.len());
    assert!(body.len() < 64_000, "{} bytes", body.len());
}
