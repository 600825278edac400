//! Durable tasks on one machine: a local nats-server (JetStream, file storage), two node
//! processes of this same binary serving the task queue, a `#[task(remote)]` pool in
//! `Mode::Cluster` submitting a batch with mixed priorities and one delayed task, one node
//! SIGKILLed mid-run (its tasks run again on the other, attempt 2, after their 2 s lease),
//! every result arriving once (counted on the completions stream), and one poison task in
//! the dead-letter store.
//!
//! ```text
//! cargo run --features cluster --example tasks
//! ```
//!
//! A node is the same binary started as `tasks node <url> <name>`: on another machine it
//! would be your own program calling `Node::connect(url)?.tasks(config).serve()`.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use concurry::cluster::{Cluster, LocalServer, Node, Priority, Submit, TaskConfig, TaskStatus};
use concurry::{Mode, Promise};

/// "Renders" a page in 300 ms: the page and the process that rendered it.
#[concurry::task(remote)]
fn render(page: String) -> Result<(String, u32), String> {
    if page.contains("poison") {
        panic!("cannot render {page}");
    }
    std::thread::sleep(Duration::from_millis(300));
    Ok((page, std::process::id()))
}

/// The queue's settings, the same in every process: a 2 s lease, so a task whose node died
/// runs again elsewhere after 2 s.
fn config() -> TaskConfig {
    TaskConfig::new()
        .queue("pages")
        .lease(Duration::from_secs(2))
}

/// A node process, killed and reaped when dropped (on any early return).
struct NodeProc(Child);

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node(url: &str, name: &str) -> NodeProc {
    NodeProc(
        Command::new(std::env::current_exe().expect("this binary"))
            .args(["node", url, name])
            .spawn()
            .expect("start a node process"),
    )
}

fn main() -> Result<(), concurry::Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("node") {
        // One line per panicking task (the poison one), not a backtrace.
        std::panic::set_hook(Box::new(|info| eprintln!("node: a task panicked: {info}")));
        return Node::connect(args[2].clone())?
            .name(args[3].clone())
            .capacity(2)
            .tasks(config())
            .serve();
    }
    // Says how to install nats-server when there is none.
    let server = match LocalServer::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(());
        }
    };
    let url = server.url();
    println!("nats-server on {url}");
    let cluster = Cluster::connect(url.clone())?;
    let queue = cluster.tasks_with(config())?;
    let done = queue.completions()?;
    let mut a = node(&url, "a");
    let _b = node(&url, "b");
    cluster.wait_for_nodes(2, Duration::from_secs(20))?;

    // The pool submits to that queue; each promise is a stored task with its id.
    let pages = render::options()
        .mode(Mode::Cluster)
        .cluster(queue.clone())
        .init()?;
    let started = Instant::now();
    let priorities = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Critical,
    ];
    let mut batch: Vec<Promise<(String, u32), String>> = (0..16)
        .map(|i| {
            let p = priorities[i % 4];
            let page = format!("page-{i:02}-{p:?}");
            pages.submit_with(page.clone(), Submit::new().id(page).priority(p))
        })
        .collect();
    let delayed = pages.submit_with(
        "page-delayed".to_string(),
        Submit::new().id("delayed-1").delay(Duration::from_secs(3)),
    );
    println!(
        "delayed task {}: {:?}",
        delayed.task_id().unwrap_or("?"),
        cluster.task_status("delayed-1")?
    );
    batch.push(delayed);
    let poison = pages.submit_with("poison-page".to_string(), Submit::new().id("poison-1"));
    let ids: Vec<String> = batch
        .iter()
        .filter_map(|p| p.task_id().map(str::to_string))
        .collect();
    println!(
        "submitted {} tasks (+1 poison), each stored durably",
        ids.len()
    );

    // Kill node `a` while it runs tasks.
    let killed_at = loop {
        let running_on_a = ids.iter().any(|id| {
            matches!(cluster.task_status(id), Ok(TaskStatus::Running { node, .. }) if node == "a")
        });
        if running_on_a || started.elapsed() > Duration::from_secs(20) {
            break started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let a_pid = a.0.id();
    a.0.kill().expect("SIGKILL");
    let _ = a.0.wait();
    println!("SIGKILLed node `a` (pid {a_pid}) after {killed_at:?}, mid-run");

    // Completions arrive as the results are stored: higher priorities first, the delayed
    // task after its 3 s, the tasks of `a` again from `b` (attempt 2).
    let mut seen: HashMap<String, u32> = HashMap::new();
    while seen.len() < ids.len() + 1 {
        let Some((id, status)) = done.recv_timeout(Duration::from_secs(30)) else {
            println!("no completion for 30 s");
            break;
        };
        *seen.entry(id.clone()).or_insert(0) += 1;
        println!("{:>7.2?}  {id:<18} {status:?}", started.elapsed());
    }
    let mut pages_done = 0;
    for (id, p) in ids.iter().zip(batch) {
        match p.result() {
            Ok((page, _pid)) => {
                assert!(id == "delayed-1" || page.starts_with("page-"));
                pages_done += 1;
            }
            Err(e) => println!("{id}: failed: {e}"),
        }
    }
    println!(
        "poison: {}",
        poison
            .result()
            .map_or_else(|e| e.to_string(), |_| "ran?".into())
    );
    // Nothing more arrives: every task finished once.
    while let Some((id, _)) = done.recv_timeout(Duration::from_millis(500)) {
        *seen.entry(id).or_insert(0) += 1;
    }
    let once = seen.len() == ids.len() + 1 && seen.values().all(|&n| n == 1);
    println!(
        "{pages_done} of {} promises resolved with their page; {} completions for {} tasks; \
         every result arrived once: {once}",
        ids.len(),
        seen.values().sum::<u32>(),
        ids.len() + 1
    );
    for dl in queue.dead_letters()? {
        println!(
            "dead letter {}: {} after {} attempt(s): {}",
            dl.id, dl.reason, dl.attempts, dl.last_error
        );
    }
    println!("all done in {:?}", started.elapsed());
    Ok(())
}
