//! Each call runs inside a `tracing` span naming the worker, the method, the attempt and the
//! worker index.

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

use concurry::prelude::*;

use crate::common::Probe;

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push_str(&format!("{}={} ", field.name(), value));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let mut f = Fields(format!("{} ", attrs.metadata().name()));
        attrs.record(&mut f);
        self.0.lock().unwrap().push(f.0);
    }
}

#[test]
fn each_call_opens_a_span_with_worker_method_and_index() {
    let recorder = Recorder::default();
    // Worker threads do not inherit a thread-local subscriber, so install a global one.
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(recorder.clone()))
        .expect("only this test installs a global subscriber");
    for mode in [Mode::Sync, Mode::Thread, Mode::Async] {
        let p = Probe::options()
            .mode(mode)
            .max_workers(1)
            .name(format!("spans-{mode}"))
            .init(Arc::default())
            .unwrap();
        p.next().result().unwrap();
        p.twice(1).result().unwrap();
        p.stop().unwrap();
        assert_spans(&recorder, mode);
    }
    // Async mode runs sync calls queued behind one another in one blocking job: still one
    // span per call.
    let p = Probe::options()
        .mode(Mode::Async)
        .max_workers(1)
        .name("spans-run")
        .init(Arc::default())
        .unwrap();
    let gate = crate::common::Gate::default();
    let held = p.hold(gate.clone());
    let queued: Vec<_> = (0..5).map(|_| p.next()).collect();
    gate.open();
    held.result().unwrap();
    let served: Vec<u64> = queued.into_iter().map(|c| c.result().unwrap()).collect();
    assert_eq!(served, [1, 2, 3, 4, 5]);
    p.stop().unwrap();
    let want = "worker=spans-run method=next attempt=1 index=0";
    let spans = recorder.0.lock().unwrap().clone();
    assert_eq!(
        spans.iter().filter(|s| s.contains(want)).count(),
        5,
        "{spans:#?}"
    );
    // Process mode: the span lives in the parent, from dispatch to the child's answer.
    let p = crate::every_mode::Echo::options()
        .mode(Mode::Process)
        .max_workers(1)
        .name("spans-process")
        .init(0)
        .unwrap();
    p.next().result().unwrap();
    p.twice(1).result().unwrap();
    p.stop().unwrap();
    assert_spans(&recorder, Mode::Process);
}

fn assert_spans(recorder: &Recorder, mode: Mode) {
    let spans = recorder.0.lock().unwrap().clone();
    for method in ["next", "twice"] {
        let want = format!("worker=spans-{mode} method={method} attempt=1 index=0");
        assert!(
            spans.iter().any(|s| s.contains(&want)),
            "{mode}: no span with `{want}` in {spans:#?}"
        );
    }
}
