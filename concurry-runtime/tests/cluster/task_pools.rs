//! `#[task(remote)]` pools in `Mode::Cluster` (issue 14): `options().mode(Mode::Cluster)
//! .cluster(..).init()` gives a handle whose `submit` is a durable task and returns a promise
//! with the task's id, `submit_with` takes a `Submit`, `map` submits each item, the
//! generated `Task` alias fetches results by id; invalid combinations are `Error::Config`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use concurry::cluster::{Cluster, LocalServer, Node, Priority, RunningNode, Submit, TaskStatus};
use concurry::{Error, Mode};

use crate::support::{HANG, eventually, within};

/// Renders a page; an empty page is the function's own error.
#[concurry::task(remote)]
fn render(page: String) -> Result<Vec<u8>, String> {
    if page.is_empty() {
        return Err("empty page".to_string());
    }
    let mut runs = RENDERS.lock().unwrap();
    *runs
        .get_or_insert_with(HashMap::new)
        .entry(page.clone())
        .or_insert(0) += 1;
    Ok(page.into_bytes())
}

/// Runs of `render` per page, in this process.
static RENDERS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

fn renders(page: &str) -> u32 {
    RENDERS
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|m| m.get(page).copied())
        .unwrap_or(0)
}

/// Not remote: it cannot run on a node.
#[concurry::task]
fn local_only(x: u64) -> u64 {
    x
}

fn connect(url: &str) -> Cluster {
    let url = url.to_string();
    within("connect", move || Cluster::connect(url)).expect("connects")
}

/// A node in this process serving the default task queue.
fn node(c: &Cluster, name: &str) -> RunningNode {
    let c = c.clone();
    let name = name.to_string();
    within("start a node", move || {
        Node::new(c).name(name).capacity(2).start()
    })
    .expect("node starts")
}

fn pool(c: &Cluster) -> render::Handle {
    let c = c.clone();
    within("init", move || {
        render::options().mode(Mode::Cluster).cluster(c).init()
    })
    .expect("a remote task's pool starts in cluster mode")
}

#[test]
fn submit_in_cluster_mode_is_a_durable_task_whose_promise_has_its_id() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = pool(&c);
    assert_eq!(q.stats().mode, Mode::Cluster);
    // Stored before any node exists: the promise waits for the stored result.
    let p = q.submit("page-1");
    let id = p
        .task_id()
        .expect("a durable task's promise has its id")
        .to_string();
    assert_eq!(c.task_status(&id).unwrap(), TaskStatus::Pending);
    let _n = node(&c, "n1");
    assert_eq!(p.result_timeout(HANG).unwrap(), b"page-1");
    assert!(matches!(
        c.task_status(&id).unwrap(),
        TaskStatus::Succeeded { attempt: 1, .. }
    ));
    // Typed by the generated alias, from the cluster by id.
    let again = c.task_result::<render::Task>(&id).unwrap();
    assert_eq!(again.result().unwrap(), Ok(b"page-1".to_vec()));
    // The function's own error stays typed.
    let e = q.submit("").result_timeout(HANG).unwrap_err();
    assert!(matches!(&e, Error::Method(m) if m == "empty page"), "{e:?}");
    // Other promises have no task id.
    assert_eq!(concurry::Promise::<u8>::ready(Ok(1)).task_id(), None);
}

#[test]
fn submit_with_takes_a_durable_tasks_id_priority_and_delay() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = pool(&c);
    let delay = Duration::from_millis(300);
    let opts = || {
        Submit::new()
            .id("invoice-42")
            .priority(Priority::High)
            .delay(delay)
    };
    let a = q.submit_with("invoice".to_string(), opts());
    assert_eq!(a.task_id(), Some("invoice-42"));
    assert!(
        matches!(
            c.task_status("invoice-42").unwrap(),
            TaskStatus::Scheduled { .. }
        ),
        "delayed"
    );
    // The same id again is the same task.
    let b = q.submit_with("invoice".to_string(), opts());
    assert_eq!(b.task_id(), Some("invoice-42"));
    let _n = node(&c, "n1");
    assert_eq!(a.result_timeout(HANG).unwrap(), b"invoice");
    assert_eq!(b.result_timeout(HANG).unwrap(), b"invoice");
    assert_eq!(renders("invoice"), 1, "one run for one id");
    // A bad id is the promise's error, naming it.
    let e = q
        .submit_with("x".to_string(), Submit::new().id("no spaces"))
        .result_timeout(HANG)
        .unwrap_err();
    assert!(e.to_string().contains("\"no spaces\""), "{e}");
    assert_eq!(
        q.submit_with("x".to_string(), Submit::new().id("x y"))
            .task_id(),
        None,
        "no id for a task that was not stored"
    );
}

#[test]
fn map_in_cluster_mode_submits_each_item_as_a_task() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let _n = node(&c, "n1");
    let q = pool(&c);
    let pages: Vec<String> = (0..20).map(|i| format!("map-{i}")).collect();
    let out = within("map", move || {
        q.map(pages).collect::<Result<Vec<_>, _>>().map(|v| {
            v.into_iter()
                .map(String::from_utf8)
                .collect::<Result<Vec<_>, _>>()
        })
    })
    .expect("every item ran")
    .expect("utf8");
    let want: Vec<String> = (0..20).map(|i| format!("map-{i}")).collect();
    assert_eq!(out, want, "in input order");
    for p in &want {
        assert_eq!(renders(p), 1);
    }
}

/// Loops until its token is signalled (at most [`HANG`]): whether it saw the signal.
#[concurry::task(remote)]
fn dawdle(page: String) -> bool {
    let deadline = std::time::Instant::now() + HANG;
    while std::time::Instant::now() < deadline {
        if concurry::check_cancelled().is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = page;
    false
}

#[test]
fn cancelling_a_durable_promise_revokes_its_task_and_the_pools_call_timeout_is_each_tasks() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = pool(&c);
    // Cancelled while stored and waiting for a node: the task never runs.
    let p = q.submit("revoked-page");
    let id = p.task_id().expect("its id").to_string();
    assert!(p.cancel());
    assert!(matches!(p.result_timeout(HANG), Err(Error::Cancelled)));
    eventually("the task is cancelled on the cluster", || {
        c.task_status(&id).unwrap() == TaskStatus::Cancelled
    });
    let _n = node(&c, "n1");
    assert_eq!(q.submit("after").result_timeout(HANG).unwrap(), b"after");
    assert_eq!(renders("revoked-page"), 0, "a revoked task never runs");
    // The pool's call_timeout holds each of its tasks.
    let slow = {
        let c = c.clone();
        within("init", move || {
            dawdle::options()
                .mode(Mode::Cluster)
                .cluster(c)
                .call_timeout(Duration::from_millis(150))
                .init()
        })
        .expect("starts")
    };
    let t = slow.submit("slow");
    let id = t.task_id().expect("its id").to_string();
    assert!(matches!(t.result_timeout(HANG), Err(Error::Timeout)));
    assert!(
        matches!(
            c.task_status(&id).unwrap(),
            TaskStatus::DeadLettered { attempts: 1, .. }
        ),
        "failed without retries: {:?}",
        c.task_status(&id)
    );
    // A submit's own call_timeout wins over the pool's.
    let own = slow.submit_with(
        "own".to_string(),
        Submit::new().call_timeout(Duration::from_millis(50)),
    );
    assert!(matches!(own.result_timeout(HANG), Err(Error::Timeout)));
}

fn config<E: std::fmt::Debug>(e: Error<E>) -> concurry::ConfigError {
    match e {
        Error::Config(cfg) => cfg,
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_combinations_in_cluster_mode_are_config_errors_that_say_the_fix() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    // A function without `remote`.
    assert_eq!(local_only(2), 2);
    let e = config(
        local_only::options()
            .mode(Mode::Cluster)
            .cluster(c.clone())
            .init()
            .unwrap_err(),
    );
    assert_eq!(e.value(), "cluster");
    assert!(e.to_string().contains("#[task(remote)]"), "{e}");
    assert!(!e.to_string().contains("#[worker"), "worded for tasks: {e}");
    // Closures.
    let e = config(
        concurry::TaskWorker::options()
            .mode(Mode::Cluster)
            .cluster(c.clone())
            .init()
            .unwrap_err(),
    );
    assert!(e.to_string().contains("closures"), "{e}");
    assert!(e.to_string().contains("Mode::Cluster"), "{e}");
    // No cluster given.
    let e = config(render::options().mode(Mode::Cluster).init().unwrap_err());
    assert_eq!(e.option(), "cluster");
    assert!(e.to_string().contains(".cluster("), "{e}");
    // Options that cannot apply to a pool without workers.
    let e = config(
        render::options()
            .mode(Mode::Cluster)
            .cluster(c.clone())
            .max_queued_tasks(4)
            .init()
            .unwrap_err(),
    );
    assert_eq!(e.option(), "max_queued_tasks");
    // `submit_with` outside cluster mode.
    let local = render::options().mode(Mode::Thread).init().unwrap();
    let e = config(
        local
            .submit_with("x".to_string(), Submit::new().id("a"))
            .result_timeout(HANG)
            .unwrap_err(),
    );
    assert!(e.to_string().contains("Mode::Cluster"), "{e}");
    assert_eq!(local.submit("x").result_timeout(HANG).unwrap(), b"x");
}

/// Panics: dead-lettered after its one attempt.
#[concurry::task(remote)]
fn explode(why: String) -> u32 {
    panic!("explode: {why}")
}

#[test]
fn completions_give_each_finished_task_once_with_its_status() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = {
        let c = c.clone();
        within("open", move || c.tasks()).unwrap()
    };
    let done = q.completions().unwrap();
    assert!(done.try_recv().is_none(), "nothing finished yet");
    let pool = pool(&c);
    let mut want: HashMap<String, &str> = HashMap::new();
    for i in 0..5 {
        let p = pool.submit(format!("done-{i}"));
        want.insert(p.task_id().unwrap().to_string(), "succeeded");
    }
    let poison = q.submit::<explode::Task>(("boom".into(),)).unwrap();
    want.insert(poison.task_id().to_string(), "dead-lettered");
    let revoked = q.submit::<render::Task>(("revoked".into(),)).unwrap();
    assert!(revoked.cancel().unwrap());
    want.insert(revoked.task_id().to_string(), "cancelled");
    let _n = node(&c, "n1");
    let mut seen: HashMap<String, TaskStatus> = HashMap::new();
    while seen.len() < want.len() {
        let (id, status) = done.recv_timeout(HANG).unwrap_or_else(|| {
            panic!(
                "only {} of {} completions: {seen:?}",
                seen.len(),
                want.len()
            )
        });
        assert!(status.is_finished(), "{status:?}");
        assert!(seen.insert(id.clone(), status).is_none(), "{id} came twice");
    }
    for (id, kind) in &want {
        let ok = match (&seen[id], *kind) {
            (TaskStatus::Succeeded { node, .. }, "succeeded") => node == "n1",
            (TaskStatus::DeadLettered { reason, attempts }, "dead-lettered") => {
                reason.contains("panicked") && *attempts == 1
            }
            (TaskStatus::Cancelled, "cancelled") => true,
            _ => false,
        };
        assert!(ok, "{id}: {kind} expected, got {:?}", seen[id]);
    }
    assert_eq!(renders("revoked"), 0);
    // Nothing else arrives.
    assert!(done.recv_timeout(Duration::from_millis(300)).is_none());
}

#[test]
fn a_pool_given_a_task_queue_submits_to_that_queue() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let config = || concurry::cluster::TaskConfig::new().queue("renders");
    let q = {
        let c = c.clone();
        within("open", move || c.tasks_with(config())).unwrap()
    };
    let pool = {
        let q = q.clone();
        within("init", move || {
            render::options().mode(Mode::Cluster).cluster(q).init()
        })
        .unwrap()
    };
    let p = pool.submit("queued-elsewhere");
    let id = p.task_id().unwrap().to_string();
    assert_eq!(q.queued().unwrap(), 1, "on the `renders` queue");
    // A node of the default queue does not take it; one of `renders` does.
    let _default = node(&c, "default-node");
    let c2 = c.clone();
    let _renders = within("start a node", move || {
        Node::new(c2)
            .name("renders-node")
            .capacity(2)
            .tasks(config())
            .start()
    })
    .unwrap();
    assert_eq!(p.result_timeout(HANG).unwrap(), b"queued-elsewhere");
    assert!(matches!(
        c.task_status(&id).unwrap(),
        TaskStatus::Succeeded { node, .. } if node == "renders-node"
    ));
}

/// Takes one `tokens` unit of its pool's limits if there is one now (the pool's process
/// hosts them), then holds the node's slot a moment so both nodes take part.
#[concurry::task(remote)]
fn take_token() -> bool {
    let got = concurry::limits().try_acquire(&[("tokens", 1)]).is_ok();
    std::thread::sleep(Duration::from_millis(30));
    got
}

#[test]
fn a_task_pools_limits_are_global_across_two_nodes_and_hosted_by_its_process() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let _nodes = [
        crate::support::NodeProc::start(&s.url(), "lim-1", 2),
        crate::support::NodeProc::start(&s.url(), "lim-2", 2),
    ];
    c.wait_for_nodes(2, HANG).unwrap();
    // Five tokens a minute, on a clock that never moves: five takes succeed, in all.
    let set = || {
        concurry::LimitSet::builder()
            .limit(concurry::RateLimit::per_minute("tokens", 5))
            .clock(concurry::FakeClock::new())
            .build()
            .unwrap()
    };
    let pool = {
        let (c, set) = (c.clone(), set());
        within("init", move || {
            take_token::options()
                .mode(Mode::Cluster)
                .cluster(c)
                .limits(set)
                .init()
        })
        .expect("a pool with limits hosts them")
    };
    // One process hosts a task's limits.
    let e = {
        let (c, set) = (c.clone(), set());
        within("a second host", move || {
            take_token::options()
                .mode(Mode::Cluster)
                .cluster(c)
                .limits(set)
                .init()
        })
        .unwrap_err()
    };
    assert!(
        e.to_string().contains("hosts this task's limits already"),
        "{e}"
    );
    let runs: Vec<_> = (0..30).map(|_| pool.submit()).collect();
    let ids: Vec<String> = runs
        .iter()
        .map(|p| p.task_id().unwrap().to_string())
        .collect();
    let granted = within("the runs", move || {
        runs.into_iter()
            .map(|p| p.result_timeout(HANG).unwrap())
            .filter(|&got| got)
            .count()
    });
    assert_eq!(granted, 5, "the set is one across the nodes");
    let nodes: std::collections::HashSet<String> = ids
        .iter()
        .map(|id| match c.task_status(id).unwrap() {
            TaskStatus::Succeeded { node, .. } => node,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(nodes.len(), 2, "both nodes ran some: {nodes:?}");
    // With the host gone, `limits()` in the task fails at once instead of waiting.
    drop(pool);
    let subject = format!(
        "cc.default.tlim.{}",
        <take_token::Task as concurry::RemoteTask>::NAME
    );
    let url = s.url();
    within("the host unsubscribes", move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let client = async_nats::connect(url).await.unwrap();
            loop {
                let probe = client.request(subject.clone(), "".into()).await;
                if matches!(&probe, Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders)
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    });
    let q = {
        let c = c.clone();
        within("open", move || c.tasks()).unwrap()
    };
    let t = q.submit::<take_token::Task>(()).unwrap();
    assert!(!t.result_timeout(HANG).unwrap(), "no host, no units");
}

/// Takes the pool's one `slot` unit if it is free now and gives it back as it returns.
#[concurry::task(remote)]
fn take_slot() -> bool {
    concurry::limits().try_acquire(&[("slot", 1)]).is_ok()
}

/// A unit a task takes and gives back is back in its pool's set when the task's promise
/// resolves.
#[test]
fn a_unit_given_back_in_a_task_is_back_when_its_promise_resolves() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let _node = crate::support::NodeProc::start(&s.url(), "slot-1", 1);
    let (c, set) = crate::support::slots_over_nodes(&s.url(), 1, 1);
    let pool = {
        let (c, set) = (c.clone(), set.clone());
        within("init", move || {
            take_slot::options()
                .mode(Mode::Cluster)
                .cluster(c)
                .limits(set)
                .init()
        })
        .unwrap()
    };
    let used = || {
        set.stats()
            .iter()
            .find(|s| s.key == "slot")
            .map_or(0, |s| s.used)
    };
    for i in 0..100 {
        assert!(
            pool.submit().result_timeout(HANG).unwrap(),
            "run {i}: no unit"
        );
        assert_eq!(used(), 0, "run {i}: still held: {:?}", set.stats());
    }
}
