//! The operators' read queries over durable tasks (`TaskQueue::queues`, `list`, `info`)
//! against a real nats-server: depths per priority, states, filters, a task's timings.

use std::time::Duration;

use concurry::cluster::{Cluster, LocalServer, Node, Priority, Submit, TaskFilter, TaskState};

use crate::support::within;

#[concurry::task(remote)]
fn inspect_double(x: u64) -> u64 {
    2 * x
}

pub(crate) type Double = inspect_double::Task;

#[test]
fn queue_depths_states_and_filters_match_what_was_submitted() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let url = s.url();
    within("inspect", move || {
        let cluster = Cluster::connect(url.clone()).unwrap();
        let q = cluster.tasks().unwrap();
        let later = Submit::new().delay(Duration::from_secs(3600));
        for i in 0..3 {
            q.submit_with::<Double>(
                (i,),
                later.clone().id(format!("hi-{i}")).priority(Priority::High),
            )
            .unwrap();
        }
        for i in 0..2 {
            q.submit_with::<Double>(
                (i,),
                Submit::new().id(format!("lo-{i}")).priority(Priority::Low),
            )
            .unwrap();
        }
        // Fresh ids: no record but their messages until a node runs them.
        let fresh: Vec<_> = (0..4)
            .map(|i| q.submit::<Double>((10 + i,)).unwrap())
            .collect();
        let fresh_later = q
            .submit_with::<Double>((9,), later.clone().priority(Priority::High))
            .unwrap();
        let snap = q.queues().unwrap();
        assert_eq!(snap.depth("default", Priority::High), 4, "{snap:?}");
        assert_eq!(snap.depth("default", Priority::Low), 2, "{snap:?}");
        assert_eq!(snap.depth("default", Priority::Normal), 4, "{snap:?}");
        assert_eq!(
            (snap.tasks.scheduled, snap.tasks.pending),
            (4, 6),
            "{snap:?}"
        );
        assert_eq!(snap.queues(), ["default"]);

        let delayed = q
            .list(&TaskFilter::new().status(TaskState::Scheduled))
            .unwrap();
        let mut ids: Vec<&str> = delayed.iter().map(|t| t.id.as_str()).collect();
        ids.sort_unstable();
        let mut want = vec!["hi-0", "hi-1", "hi-2", fresh_later.task_id()];
        want.sort_unstable();
        assert_eq!(ids, want);
        for t in &delayed {
            assert_eq!(
                t.task.as_deref(),
                Some(<Double as concurry::RemoteTask>::NAME)
            );
            assert_eq!(
                (t.queue.as_deref(), t.priority),
                (Some("default"), Some(Priority::High))
            );
            assert!(
                t.run_at_ms.unwrap() > t.submitted_ms.unwrap() + 3_000_000,
                "{t:?}"
            );
        }
        let pending = q
            .list(&TaskFilter::new().status(TaskState::Pending))
            .unwrap();
        assert_eq!(pending.len(), 6, "{pending:?}");
        for h in &fresh {
            let t = q.info(h.task_id()).unwrap();
            assert_eq!(t.status, TaskState::Pending, "{t:?}");
            assert_eq!(
                (t.queue.as_deref(), t.priority),
                (Some("default"), Some(Priority::Normal)),
                "{t:?}"
            );
            assert_eq!(
                t.task.as_deref(),
                Some(<Double as concurry::RemoteTask>::NAME)
            );
            assert!(t.submitted_ms.is_some(), "{t:?}");
            assert!(pending.iter().any(|p| p.id == t.id), "{pending:?}");
        }
        assert_eq!(q.list(&TaskFilter::new().limit(2)).unwrap().len(), 2);
        assert!(
            q.list(&TaskFilter::new().queue("other"))
                .unwrap()
                .is_empty()
        );

        // A node runs the two pending ones; the delayed ones stay.
        let node = Node::new(cluster.clone())
            .name("inspector")
            .capacity(2)
            .start()
            .unwrap();
        let h = q.handle::<Double>("lo-1").unwrap();
        assert_eq!(h.result_timeout(Duration::from_secs(20)).unwrap(), 2);
        q.handle::<Double>("lo-0")
            .unwrap()
            .result_timeout(Duration::from_secs(20))
            .unwrap();
        for (i, h) in fresh.iter().enumerate() {
            assert_eq!(
                h.result_timeout(Duration::from_secs(20)).unwrap(),
                2 * (10 + i as u64)
            );
        }
        let t = q.info("lo-1").unwrap();
        assert_eq!(t.status, TaskState::Succeeded);
        assert_eq!((t.node.as_deref(), t.attempts), (Some("inspector"), 1));
        assert!(t.started_ms.unwrap() <= t.finished_ms.unwrap(), "{t:?}");
        // Its message has left the stream; the result still says where it came from.
        assert_eq!(t.queue.as_deref(), Some("default"), "{t:?}");
        assert!(t.task.is_some(), "{t:?}");
        assert!(t.submitted_ms.unwrap() <= t.started_ms.unwrap(), "{t:?}");
        assert!(q.cancel("hi-0").unwrap());
        let snap = q.queues().unwrap();
        assert_eq!(
            (
                snap.tasks.succeeded,
                snap.tasks.cancelled,
                snap.tasks.pending
            ),
            (6, 1, 0),
            "{snap:?}"
        );
        assert_eq!(snap.depth("default", Priority::Low), 0, "{snap:?}");
        assert_eq!(
            q.info("never-submitted").unwrap().status,
            TaskState::Unknown
        );
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["levels"][0]["priority"], "critical", "{json}");
        drop(node);
    });
}

#[test]
fn json_arguments_are_decoded_by_a_node_and_the_result_rendered_as_json() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let url = s.url();
    within("json tasks", move || {
        let cluster = Cluster::connect(url.clone()).unwrap();
        let q = cluster.tasks().unwrap();
        let name = <Double as concurry::RemoteTask>::NAME;
        // No node yet: nobody can decode the arguments.
        let e = q.submit_json(name, "[21]", Submit::new()).unwrap_err();
        match e {
            concurry::Error::Config(c) => assert_eq!(c.option(), "nodes", "{c}"),
            other => panic!("{other:?}"),
        }
        let _node = Node::new(cluster.clone())
            .name("json-node")
            .capacity(2)
            .start()
            .unwrap();
        let id = q
            .submit_json(name, "[21]", Submit::new().id("json-1"))
            .unwrap();
        assert_eq!(id, "json-1");
        let out = q
            .result_json(&id, None, Some(Duration::from_secs(20)))
            .unwrap();
        assert_eq!(out.as_deref(), Some("42"));
        assert_eq!(q.info(&id).unwrap().task.as_deref(), Some(name));
        // A typed handle reads the same result.
        assert_eq!(q.handle::<Double>(&id).unwrap().result().unwrap(), 42);

        let e = q
            .submit_json(name, r#"["lots"]"#, Submit::new())
            .unwrap_err();
        let concurry::Error::Config(c) = e else {
            panic!("{e:?}")
        };
        assert_eq!(c.option(), "task arguments");
        assert!(
            c.fix()
                .contains("argument 1 (\"lots\"): invalid type: string \"lots\", expected u64")
                && c.fix().contains("it takes (u64,)"),
            "{c}"
        );
        let e = q
            .submit_json("no::such_task", "[]", Submit::new())
            .unwrap_err();
        let concurry::Error::Config(c) = e else {
            panic!("{e:?}")
        };
        assert_eq!(c.option(), "task");
        assert!(c.fix().contains(name), "lists the known tasks: {c}");

        // A task submitted from Rust has no recorded name: it must be given.
        let typed = q
            .submit_with::<Double>((5,), Submit::new().id("typed-1"))
            .unwrap();
        typed.result_timeout(Duration::from_secs(20)).unwrap();
        let e = q.result_json("typed-1", None, None).unwrap_err();
        let concurry::Error::Config(c) = e else {
            panic!("{e:?}")
        };
        assert!(c.fix().contains("--task NAME"), "{c}");
        assert_eq!(
            q.result_json("typed-1", Some(name), None)
                .unwrap()
                .as_deref(),
            Some("10")
        );
        assert_eq!(q.result_json("never-was", None, None).unwrap(), None);
    });
}

#[test]
fn a_drain_request_drains_the_node_as_sigterm_would() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let url = s.url();
    within("drain request", move || {
        let cluster = Cluster::connect(url.clone()).unwrap();
        let events = cluster.events();
        let node = Node::new(Cluster::connect(url.clone()).unwrap())
            .name("drained")
            .start()
            .unwrap();
        let _other = Node::new(Cluster::connect(url).unwrap())
            .name("stays")
            .start()
            .unwrap();
        cluster.wait_for_nodes(2, Duration::from_secs(20)).unwrap();
        cluster.drain(&node.id()).unwrap();
        loop {
            match events.recv_timeout(Duration::from_secs(20)) {
                Some(concurry::cluster::ClusterEvent::Left(n)) => {
                    assert_eq!(n.name(), "drained");
                    break;
                }
                Some(_) => {}
                None => panic!("the node did not leave after a drain request"),
            }
        }
        assert_eq!(
            cluster.nodes().iter().map(|n| n.name()).collect::<Vec<_>>(),
            ["stays"]
        );
        // The handle's own drain finds it drained.
        node.drain().unwrap();
        let e = cluster.drain("nobody-0000").unwrap_err();
        let concurry::Error::Config(c) = e else {
            panic!("{e:?}")
        };
        assert_eq!(c.option(), "node");
    });
}
