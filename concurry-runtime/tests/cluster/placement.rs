//! Placement: unit cases, properties (with committed regressions), and a plan over real
//! nodes.

use concurry::cluster::{LocalServer, NodeView, Placement, plan};
use proptest::prelude::*;

use crate::support::{HANG, NodeProc, echo_type, within};

const T: &str = "app::Worker";

fn counts(p: &[Placement]) -> Vec<(&str, u32)> {
    p.iter().map(|p| (p.node(), p.instances())).collect()
}

#[test]
fn equal_nodes_get_equal_shares() {
    let nodes: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| NodeView::new(*n, 8).with_types([T]))
        .collect();
    assert_eq!(
        counts(&plan(T, 12, &nodes).unwrap()),
        [("a", 4), ("b", 4), ("c", 4)]
    );
}

#[test]
fn shares_follow_capacity_and_existing_load() {
    let nodes = [
        NodeView::new("big", 8).with_types([T]),
        NodeView::new("small", 4).with_types([T]),
        NodeView::new("busy", 8).with_types([T]).with_free(2),
    ];
    // big and small fill in proportion (6 of 8, 3 of 4); busy (6 of 8 hosted) gets none.
    assert_eq!(
        counts(&plan(T, 9, &nodes).unwrap()),
        [("big", 6), ("small", 3)]
    );
}

#[test]
fn draining_and_unable_nodes_get_nothing() {
    let nodes = [
        NodeView::new("drain", 8)
            .with_types([T])
            .with_draining(true),
        NodeView::new("other", 8).with_types(["app::Other"]),
        NodeView::new("ok", 2).with_types([T]),
    ];
    assert_eq!(counts(&plan(T, 2, &nodes).unwrap()), [("ok", 2)]);
}

#[test]
fn no_host_names_the_type_and_every_node_seen() {
    let nodes = [
        NodeView::new("a", 2).with_types(["app::Other"]),
        NodeView::new("b", 2).with_types([T]).with_draining(true),
    ];
    let e = plan(T, 1, &nodes).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("no live node can host `app::Worker`"),
        "{text}"
    );
    assert!(text.contains("a (hosts app::Other; 2 of 2 free)"), "{text}");
    assert!(
        text.contains("b (hosts app::Worker; 2 of 2 free; draining)"),
        "{text}"
    );
    let e = plan(T, 1, &[]).unwrap_err();
    assert!(e.to_string().contains("nodes seen: none"), "{e}");
}

#[test]
fn too_few_free_slots_is_a_max_workers_error() {
    let nodes = [NodeView::new("a", 4).with_types([T]).with_free(1)];
    let e = plan(T, 3, &nodes).unwrap_err();
    assert_eq!(e.option(), "max_workers");
    assert_eq!(e.value(), "3");
    assert!(
        e.to_string()
            .contains("only 1 free slots for `app::Worker`"),
        "{e}"
    );
    assert!(plan(T, 1, &nodes).is_ok());
}

#[derive(Debug, Clone)]
struct N {
    capacity: u32,
    free: u32,
    able: bool,
    draining: bool,
}

fn nodes() -> impl Strategy<Value = Vec<N>> {
    proptest::collection::vec(
        (
            0u32..12,
            0u32..13,
            any::<bool>(),
            proptest::bool::weighted(0.15),
        )
            .prop_map(|(capacity, free, able, draining)| N {
                capacity,
                free: free.min(capacity),
                able,
                draining,
            }),
        0..7,
    )
}

fn views(ns: &[N]) -> Vec<NodeView> {
    ns.iter()
        .enumerate()
        .map(|(i, n)| {
            let v = NodeView::new(format!("n{i}"), n.capacity)
                .with_free(n.free)
                .with_draining(n.draining);
            if n.able {
                v.with_types([T])
            } else {
                v.with_types(["x::Y"])
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::SourceParallel("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    /// A plan places exactly `n` within every node's free slots, only on nodes that can host
    /// the type and are not draining, and balanced: moving any instance to another node with
    /// room would not lower that node's load below the one it left.
    #[test]
    fn plans_are_complete_capped_and_balanced(ns in nodes(), n in 0u32..40) {
        let vs = views(&ns);
        let usable: Vec<usize> = (0..ns.len())
            .filter(|&i| ns[i].able && !ns[i].draining && ns[i].capacity > 0)
            .collect();
        let free: u32 = usable.iter().map(|&i| ns[i].free).sum();
        match plan(T, n, &vs) {
            Err(e) => {
                prop_assert!(usable.is_empty() || free < n, "refused a feasible plan: {}", e);
                prop_assert!(e.to_string().contains(T));
                for v in &vs {
                    prop_assert!(e.to_string().contains(v.name()), "{} missing from {}", v.name(), e);
                }
            }
            Ok(p) => {
                prop_assert!(!usable.is_empty() && free >= n);
                prop_assert_eq!(p.iter().map(Placement::instances).sum::<u32>(), n);
                let mut placed = vec![0u32; ns.len()];
                for pl in &p {
                    let i: usize = pl.node()[1..].parse().unwrap();
                    prop_assert!(usable.contains(&i), "placed on unusable {}", pl.node());
                    prop_assert!(pl.instances() >= 1);
                    prop_assert!(pl.instances() <= ns[i].free, "over the cap of {}", pl.node());
                    placed[i] = pl.instances();
                }
                let used = |i: usize| u64::from(ns[i].capacity - ns[i].free + placed[i]);
                for &a in &usable {
                    for &b in &usable {
                        if placed[a] > 0 && placed[b] < ns[b].free {
                            // load(a) <= load(b) + one instance, cross-multiplied.
                            prop_assert!(
                                used(a) * u64::from(ns[b].capacity)
                                    <= (used(b) + 1) * u64::from(ns[a].capacity),
                                "n{} is fuller than n{} would be with one more", a, b
                            );
                        }
                    }
                }
            }
        }
    }

    /// The same nodes in another order give the same plan.
    #[test]
    fn plans_do_not_depend_on_the_order_nodes_are_seen(ns in nodes(), n in 0u32..40) {
        let vs = views(&ns);
        let mut rev = vs.clone();
        rev.reverse();
        prop_assert_eq!(plan(T, n, &vs).ok(), plan(T, n, &rev).ok());
    }
}

#[test]
fn three_real_nodes_take_twelve_instances_by_capacity() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let url = s.url();
    let _nodes: Vec<NodeProc> = [("n1", 8), ("n2", 4), ("n3", 4)]
        .iter()
        .map(|(n, c)| NodeProc::start(&url, n, *c))
        .collect();
    let c = within("connect", move || concurry::cluster::Cluster::connect(url)).unwrap();
    c.wait_for_nodes(3, HANG).unwrap();
    let p = c.plan(&echo_type(), 12).unwrap();
    assert_eq!(counts(&p), [("n1", 6), ("n2", 3), ("n3", 3)]);
    let e = c.plan("no::Such", 1).unwrap_err();
    for n in ["n1", "n2", "n3", "no::Such"] {
        assert!(e.to_string().contains(n), "{e}");
    }
}
