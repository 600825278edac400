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
