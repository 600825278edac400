//! The operators' read queries over durable tasks (`TaskQueue::queues`, `list`, `info`)
//! against a real nats-server: depths per priority, states, filters, a task's timings.

use std::time::Duration;

use concurry::cluster::{Cluster, LocalServer, Node, Priority, Submit, TaskFilter, TaskState};

use crate::support::within;

#[concurry::task(remote)]
fn inspect_double(x: u64) -> u64 {
    2 * x
}

type Double = inspect_double::__RemoteTask;

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
        let snap = q.queues().unwrap();
        assert_eq!(snap.depth("default", Priority::High), 3, "{snap:?}");
        assert_eq!(snap.depth("default", Priority::Low), 2, "{snap:?}");
        assert_eq!(snap.depth("default", Priority::Normal), 0, "{snap:?}");
        assert_eq!(
            (snap.tasks.scheduled, snap.tasks.pending),
            (3, 2),
            "{snap:?}"
        );
        assert_eq!(snap.queues(), ["default"]);

        let delayed = q
            .list(&TaskFilter::new().status(TaskState::Scheduled))
            .unwrap();
        let mut ids: Vec<&str> = delayed.iter().map(|t| t.id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["hi-0", "hi-1", "hi-2"]);
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
        let t = q.info("lo-1").unwrap();
        assert_eq!(t.status, TaskState::Succeeded);
        assert_eq!((t.node.as_deref(), t.attempts), (Some("inspector"), 1));
        assert!(t.started_ms.unwrap() <= t.finished_ms.unwrap(), "{t:?}");
        assert!(q.cancel("hi-0").unwrap());
        let snap = q.queues().unwrap();
        assert_eq!(
            (snap.tasks.succeeded, snap.tasks.cancelled),
            (2, 1),
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
