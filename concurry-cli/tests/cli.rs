//! The `concurry` binary end to end: against a real `nats-server` (`LocalServer`: skips with
//! one line when none is installed, fails under `CI=true`) with nodes started in this test
//! process, plus what needs no server (usage errors, an unreachable server, `--help`).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use concurry::cluster::{Cluster, LocalServer, Node, RunningNode};

/// Generous: only catches hangs.
const HANG: Duration = Duration::from_secs(30);

/// A remote worker type, so the nodes of this binary have something to host.
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

/// Durable tasks of this binary, which the nodes started here run.
#[concurry::task(remote)]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[concurry::task(remote)]
fn explode(why: String) -> u64 {
    panic!("exploded: {why}")
}

fn add_name() -> &'static str {
    <add::Task as concurry::RemoteTask>::NAME
}

fn explode_name() -> &'static str {
    <explode::Task as concurry::RemoteTask>::NAME
}

/// Runs `concurry --server url --json args...`, expects exit 0, parses the JSON.
fn json_ok(url: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--server", url, "--json"];
    all.extend_from_slice(args);
    let out = concurry(&all);
    assert!(
        out.status.success(),
        "concurry {args:?}: {:?} {}",
        out.status,
        stderr(&out)
    );
    serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("concurry {args:?} printed no JSON ({e}): {}", stdout(&out)))
}

fn echo_type() -> String {
    <Echo as concurry::RemoteWorker>::NAME.to_string()
}

/// Runs `concurry args...` with none of its environment variables set; fails after
/// [`HANG`].
fn concurry(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_concurry"));
    cmd.args(args);
    for var in [
        "CONCURRY_SERVER",
        "CONCURRY_TOKEN",
        "CONCURRY_PASSWORD",
        "CONCURRY_NKEY",
        "CONCURRY_NAMESPACE",
    ] {
        cmd.env_remove(var);
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the concurry binary");
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(HANG) {
        Ok(out) => out.expect("wait for concurry"),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("concurry {args:?} still running after {HANG:?}");
        }
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Two nodes of this process, `alpha` (2 slots) and `beta` (3), seen by a client before
/// this returns (so each answers the CLI's ping too).
fn two_nodes(url: &str) -> (RunningNode, RunningNode) {
    let start = |name: &str, capacity| {
        Node::new(Cluster::connect(url).expect("connects"))
            .name(name)
            .capacity(capacity)
            .start()
            .expect("node starts")
    };
    let nodes = (start("alpha", 2), start("beta", 3));
    Cluster::connect(url)
        .unwrap()
        .wait_for_nodes(2, HANG)
        .expect("both nodes show up");
    nodes
}

#[test]
fn nodes_json_lists_two_started_nodes() {
    let Some(server) = LocalServer::for_tests() else {
        return;
    };
    let url = server.url();
    let _nodes = two_nodes(&url);
    let out = concurry(&["--server", &url, "--json", "nodes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(doc["namespace"], "default");
    assert_eq!(doc["server"], url.as_str());
    let nodes = doc["nodes"].as_array().expect("a list of nodes");
    let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert_eq!(
        (nodes[0]["capacity"].as_u64(), nodes[0]["free"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(nodes[1]["capacity"].as_u64(), Some(3));
    for n in nodes {
        assert_eq!(n["pid"].as_u64(), Some(u64::from(std::process::id())));
        assert_eq!(n["draining"], false);
        assert!(
            n["id"]
                .as_str()
                .unwrap()
                .starts_with(n["name"].as_str().unwrap())
        );
        assert!(
            n["types"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| *t == echo_type().as_str()),
            "{n}"
        );
        assert_eq!(n["heartbeat_interval_ms"].as_u64(), Some(1000));
        assert!(n["last_heartbeat_ms"].as_u64().unwrap() < HANG.as_millis() as u64);
    }
}

#[test]
fn the_nodes_table_has_stable_columns() {
    let Some(server) = LocalServer::for_tests() else {
        return;
    };
    let url = server.url();
    let _nodes = two_nodes(&url);
    let out = concurry(&["--server", &url, "nodes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let header = lines[0];
    let columns: Vec<&str> = header.split("  ").filter(|c| !c.is_empty()).collect();
    assert_eq!(
        columns.iter().map(|c| c.trim()).collect::<Vec<_>>(),
        [
            "NAME",
            "ID",
            "HOST",
            "PID",
            "CAPACITY",
            "FREE",
            "DRAINING",
            "LAST HEARTBEAT",
            "TYPES"
        ]
    );
    // Every row's cells start where their column's title does.
    let at = |title: &str| header.find(title).unwrap();
    for (row, (name, capacity)) in lines[1..].iter().zip([("alpha", "2"), ("beta", "3")]) {
        assert!(row.starts_with(name), "{row}");
        assert_eq!(&row[at("CAPACITY")..][..1], capacity, "{row}");
        assert_eq!(&row[at("DRAINING")..][..2], "no", "{row}");
        assert_eq!(
            &row[at("PID")..][..std::process::id().to_string().len()],
            std::process::id().to_string()
        );
        assert!(row[at("LAST HEARTBEAT")..].contains("s ago"), "{row}");
        assert!(row[at("TYPES")..].contains(&echo_type()), "{row}");
    }
}

#[test]
fn node_shows_one_node_and_exits_1_for_an_unknown_name() {
    let Some(server) = LocalServer::for_tests() else {
        return;
    };
    let url = server.url();
    let _nodes = two_nodes(&url);
    let out = concurry(&["--server", &url, "--json", "node", "beta"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let node: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(
        (node["name"].as_str(), node["capacity"].as_u64()),
        (Some("beta"), Some(3))
    );

    let out = concurry(&["--server", &url, "node", "gamma", "--settle", "100ms"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("no live node named `gamma` in namespace `default`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_empty_namespace_lists_no_nodes() {
    let Some(server) = LocalServer::for_tests() else {
        return;
    };
    let url = server.url();
    let _nodes = two_nodes(&url);
    let out = concurry(&[
        "--server",
        &url,
        "--namespace",
        "other",
        "nodes",
        "--settle",
        "100ms",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("no live nodes in namespace `other` on {url}\n")
    );
    let out = concurry(&["--server", &url, "--namespace", "other", "--json", "nodes"]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(doc["nodes"], serde_json::json!([]));
}

#[test]
fn an_unreachable_server_exits_3_naming_it() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let out = concurry(&["--server", "nats://127.0.0.1:1", "nodes"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("concurry: could not connect to nats://127.0.0.1:1: "),
        "{err}"
    );
    assert!(err.contains("no NATS server answered"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn refused_credentials_exit_3() {
    let Some(server) = LocalServer::builder().token("right-token").for_tests() else {
        return;
    };
    let url = server.url();
    let out = concurry(&["--server", &url, "--token", "wrong-token", "nodes"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(
        !err.contains("wrong-token"),
        "the token is not echoed: {err}"
    );
    let out = concurry(&["--server", &url, "--token", "right-token", "nodes"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_2() {
    let out = concurry(&["nodes", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unexpected argument '--bogus'"),
        "{}",
        stderr(&out)
    );
    let out = concurry(&["--user", "svc", "nodes"]);
    assert_eq!(out.status.code(), Some(2), "--user needs --password");
    let out = concurry(&["--connect-timeout", "5", "nodes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`5` has no unit"), "{}", stderr(&out));
    // Checked by concurry itself, before any connection is tried.
    let out = concurry(&["--namespace", "a b", "nodes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("concurry: --namespace \"a b\": use 1 to 64 ASCII letters"),
        "{}",
        stderr(&out)
    );
    let out = concurry(&[]);
    assert_eq!(out.status.code(), Some(2), "a command is required");
}

/// `--help` of the binary and of each command, against the committed snapshots in
/// `tests/snapshots/` (bless with `UPDATE_SNAPSHOTS=1`, then review `git diff`).
#[test]
fn help_matches_the_snapshots() {
    for (args, file) in [
        (&["--help"][..], "help.txt"),
        (&["nodes", "--help"], "help-nodes.txt"),
        (&["node", "--help"], "help-node.txt"),
        (&["queues", "--help"], "help-queues.txt"),
        (&["tasks", "--help"], "help-tasks.txt"),
        (&["task", "--help"], "help-task.txt"),
        (&["result", "--help"], "help-result.txt"),
        (&["submit", "--help"], "help-submit.txt"),
        (&["cancel", "--help"], "help-cancel.txt"),
        (&["dlq", "--help"], "help-dlq.txt"),
        (&["dlq", "list", "--help"], "help-dlq-list.txt"),
        (&["dlq", "replay", "--help"], "help-dlq-replay.txt"),
        (&["dlq", "purge", "--help"], "help-dlq-purge.txt"),
        (&["drain", "--help"], "help-drain.txt"),
        (&["pools", "--help"], "help-pools.txt"),
        (&["limits", "--help"], "help-limits.txt"),
        (&["dashboard", "--help"], "help-dashboard.txt"),
    ] {
        let out = concurry(args);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains("Example"),
            "every command shows an example: {text}"
        );
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/snapshots")
            .join(file);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (bless with UPDATE_SNAPSHOTS=1)", path.display()));
        assert_eq!(
            text,
            want,
            "`concurry {}` changed; bless with UPDATE_SNAPSHOTS=1",
            args.join(" ")
        );
    }
}

#[test]
fn submit_runs_a_task_from_json_and_result_task_and_tasks_show_it() {
    let Some(server) = LocalServer::for_tests() else {
        return;
    };
    let url = server.url();
    let _nodes = two_nodes(&url);
    let doc = json_ok(
        &url,
        &["submit", add_name(), "[2, 3]", "--id", "sum-1", "--wait"],
    );
    assert_eq!(doc["id"], "sum-1");
    assert_eq!(doc["output"], 5);
    assert_eq!(
        (doc["queue"].as_str(), doc["priority"].as_str()),
        (Some("default"), Some("normal"))
    );

    let doc = json_ok(&url, &["result", "sum-1"]);
    assert_eq!(
        (doc["output"].as_u64(), doc["status"].as_str()),
        (Some(5), Some("succeeded"))
    );
    // Without --json: the output itself.
    let out = concurry(&["--server", &url, "result", "sum-1"]);
    assert_eq!(stdout(&out), "5\n", "{}", stderr(&out));

    let t = json_ok(&url, &["task", "sum-1"]);
    assert_eq!(t["status"], "succeeded");
    assert_eq!(t["task"], add_name());
    assert_eq!(t["attempts"], 1);
    assert!(
        ["alpha", "beta"].contains(&t["node"].as_str().unwrap()),
        "{t}"
    );
    assert!(
        t["started_ms"].as_u64().unwrap() <= t["finished_ms"].as_u64().unwrap(),
        "{t}"
    );
    let out = concurry(&["--server", &url, "task", "sum-1"]);
    let text = stdout(&out);
    assert!(text.contains("status:    succeeded\n"), "{text}");
    assert!(
        text.contains(&format!("task:      {}\n", add_name())),
        "{text}"
    );

    let listed = json_ok(&url, &["tasks", "--status", "succeeded"]);
    let ids: Vec<&str> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["sum-1"]);
    let out = concurry(&["--server", &url, "tasks"]);
    let text = stdout(&out);
    let header = text.lines().next().unwrap_or("");
    assert!(header.starts_with("ID     STATUS     TASK"), "{text}");
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with("sum-1  succeeded  "),
        "{text}"
    );
    assert!(
        json_ok(&url, &["tasks", "--status", "failed"])["tasks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn bad_submits_and_unknown_ids_have_their_exit_codes() {
    let Some(server) = LocalServer::for_tests() else {
        return;
    };
    let url = server.url();
    let _nodes = two_nodes(&url);
    let out = concurry(&["--server", &url, "submit", add_name(), r#"[2, "three"]"#]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(r#"argument 2 ("three"): invalid type: string "three", expected u64"#)
            && err.contains("it takes (u64, u64)"),
        "{err}"
    );
    let out = concurry(&["--server", &url, "submit", "app::nope", "[]"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(add_name()),
        "lists the known tasks: {}",
        stderr(&out)
    );
    let out = concurry(&[
        "--server",
        &url,
        "submit",
        add_name(),
        "[1, 2",
        "--priority",
        "high",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not JSON"), "{}", stderr(&out));
    let out = concurry(&[
        "--server",
        &url,
        "submit",
        add_name(),
        "[1, 2]",
        "--priority",
        "urgent",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`critical`, `high`, `normal`, `low`"),
        "{}",
        stderr(&out)
    );
    let out = concurry(&[
        "--server",
        &url,
        "submit",
        add_name(),
        "[1, 2]",
        "--id",
        "a b",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    for args in [
        &["task", "nope"][..],
        &["result", "nope"],
        &["cancel", "nope"],
        &["dlq", "replay", "nope"],
    ] {
        let mut all = vec!["--server", url.as_str()];
        all.extend_from_slice(args);
        let out = concurry(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
    let out = concurry(&["--server", &url, "tasks", "--status", "done"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`succeeded`"), "{}", stderr(&out));
}

#[test]
fn queues_show_depth_per_priority_and_cancel_revokes() {
    let Some(server) = LocalServer::for_tests() else {
        return;
    };
    let url = server.url();
    let _nodes = two_nodes(&url);
    for (id, prio) in [("h1", "high"), ("h2", "high"), ("l1", "low")] {
        json_ok(
            &url,
            &[
                "submit",
                add_name(),
                "[1, 1]",
                "--id",
                id,
                "--priority",
                prio,
                "--delay",
                "1h",
            ],
        );
    }
    let q = json_ok(&url, &["queues"]);
    assert_eq!(q["namespace"], "default");
    let depth = |prio: &str| {
        q["levels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["queue"] == "default" && l["priority"] == prio)
            .map_or(0, |l| l["depth"].as_u64().unwrap())
    };
    assert_eq!(
        (
            depth("critical"),
            depth("high"),
            depth("normal"),
            depth("low")
        ),
        (0, 2, 0, 1),
        "{q}"
    );
    assert_eq!(q["tasks"]["scheduled"], 3, "{q}");
    let out = concurry(&["--server", &url, "queues"]);
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "QUEUE    CRITICAL  HIGH  NORMAL  LOW  WAITING  HELD  DEAD",
        "{text}"
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("default  0         2     0       1    "),
        "{text}"
    );
    assert!(text.contains("3 delayed"), "{text}");

    let delayed = json_ok(
        &url,
        &["tasks", "--status", "scheduled", "--queue", "default"],
    );
    assert_eq!(delayed["tasks"].as_array().unwrap().len(), 3, "{delayed}");
    let c = json_ok(&url, &["cancel", "h1"]);
    assert_eq!(
        (c["cancelled"].as_bool(), c["status"].as_str()),
        (Some(true), Some("cancelled"))
    );
    let c = json_ok(&url, &["cancel", "h1"]);
    assert_eq!(c["cancelled"], false);
    let out = concurry(&["--server", &url, "result", "h1"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "a cancelled task failed: {}",
        stderr(&out)
    );
    let out = concurry(&["--server", &url, "result", "h2"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "no result yet: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("no result yet (status: scheduled)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn dead_letters_are_listed_replayed_and_purged() {
    let Some(server) = LocalServer::for_tests() else {
        return;
    };
    let url = server.url();
    let _nodes = two_nodes(&url);
    let out = concurry(&[
        "--server",
        &url,
        "submit",
        explode_name(),
        r#""now""#,
        "--id",
        "boom",
        "--wait",
        "--timeout",
        "20s",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("exploded: now"), "{}", stderr(&out));
    let list = json_ok(&url, &["dlq", "list"]);
    let letters = list["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{list}");
    assert_eq!(
        (letters[0]["id"].as_str(), letters[0]["task"].as_str()),
        (Some("boom"), Some(explode_name()))
    );
    assert!(
        letters[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("exploded: now")
    );
    let t = json_ok(&url, &["task", "boom"]);
    assert_eq!(t["status"], "dead_lettered");
    let q = json_ok(&url, &["queues"]);
    assert_eq!(q["dead_letters"]["default"], 1, "{q}");

    assert_eq!(
        json_ok(&url, &["dlq", "replay", "boom"])["replayed"],
        "boom"
    );
    // It runs again (and dead-letters again).
    let out = concurry(&["--server", &url, "result", "boom", "--wait", "20s"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let out = concurry(&["--server", &url, "dlq", "list"]);
    assert!(stdout(&out).starts_with("ID    TASK"), "{}", stdout(&out));
    assert_eq!(json_ok(&url, &["dlq", "purge"])["purged"], 1);
    assert_eq!(
        json_ok(&url, &["dlq", "list"])["dead_letters"],
        serde_json::json!([])
    );
}

#[test]
fn drain_asks_a_node_to_drain_and_it_leaves() {
    let Some(server) = LocalServer::for_tests() else {
        return;
    };
    let url = server.url();
    let (alpha, _beta) = two_nodes(&url);
    let doc = json_ok(&url, &["drain", "alpha", "--wait", "--timeout", "20s"]);
    assert_eq!(
        (doc["node"].as_str(), doc["left"].as_bool()),
        (Some("alpha"), Some(true))
    );
    assert_eq!(doc["id"], alpha.id().as_str());
    let nodes = json_ok(&url, &["nodes"]);
    let names: Vec<&str> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["beta"]);
    let out = concurry(&["--server", &url, "drain", "alpha", "--settle", "100ms"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no live node named `alpha`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pools_and_limits_show_a_cluster_pool_with_its_usage() {
    let Some(server) = LocalServer::for_tests() else {
        return;
    };
    let url = server.url();
    let _nodes = two_nodes(&url);
    let set = concurry::LimitSet::builder()
        .limit(concurry::RateLimit::per_minute("tokens", 100))
        .limit(concurry::ResourceLimit::new("db", 4))
        .clock(concurry::FakeClock::new())
        .build()
        .unwrap();
    let pool = Echo::options()
        .mode(concurry::Mode::Cluster)
        .cluster(Cluster::connect(url.as_str()).unwrap())
        .name("echoes")
        .max_workers(2)
        .limits(set.clone())
        .init()
        .expect("a cluster pool");
    for i in 0..3 {
        assert_eq!(pool.echo(i).result_timeout(HANG).unwrap(), i);
    }
    let _held = set.acquire(&[("tokens", 30), ("db", 1)]).unwrap();

    let doc = json_ok(&url, &["pools"]);
    let pools = doc["pools"].as_array().unwrap();
    assert_eq!(pools.len(), 1, "{doc}");
    let p = &pools[0];
    assert_eq!(
        (p["name"].as_str(), p["worker"].as_str()),
        (Some("echoes"), Some(echo_type().as_str()))
    );
    assert_eq!(
        (
            p["workers"].as_u64(),
            p["dispatched"].as_u64(),
            p["in_flight"].as_u64()
        ),
        (Some(2), Some(3), Some(0)),
        "{p}"
    );
    let placed: u64 = p["instances"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(placed, 2, "{p}");
    let out = concurry(&["--server", &url, "pools"]);
    let text = stdout(&out);
    assert!(text.starts_with("NAME    TYPE"), "{text}");
    assert!(
        text.lines().nth(1).unwrap().starts_with("echoes  "),
        "{text}"
    );

    let doc = json_ok(&url, &["limits"]);
    let limits = doc["limits"].as_array().unwrap();
    let by_key = |k: &str| {
        limits
            .iter()
            .find(|l| l["key"] == k)
            .unwrap_or_else(|| panic!("{doc}"))
    };
    let tokens = by_key("tokens");
    assert_eq!(
        (
            tokens["pool"].as_str(),
            tokens["used"].as_u64(),
            tokens["capacity"].as_u64()
        ),
        (Some("echoes"), Some(30), Some(100)),
        "{doc}"
    );
    assert_eq!(tokens["kind"], "rate (sliding_window)");
    let db = by_key("db");
    assert_eq!(
        (
            db["used"].as_u64(),
            db["capacity"].as_u64(),
            db["kind"].as_str()
        ),
        (Some(1), Some(4), Some("resource"))
    );
    let out = concurry(&["--server", &url, "limits"]);
    let text = stdout(&out);
    assert_eq!(
        text.lines().next().unwrap(),
        "POOL    KEY     KIND                   USED  CAPACITY  USAGE  WAITERS",
        "{text}"
    );
    assert!(text.contains(" 30    100       30%"), "{text}");
    pool.stop().unwrap();
}
