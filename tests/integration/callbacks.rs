//! `on_done` callbacks: a callback's panic is contained where it runs (a worker, the runtime,
//! the caller's thread) and reported through `tracing`; the promise keeps its result.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

use concurry::prelude::*;

use crate::common::{Gate, Probe, quiet_planned_panics};

/// Generous: only catches a promise that never resolves.
const DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn a_panicking_callback_neither_wedges_the_pool_nor_loses_the_result() {
    quiet_planned_panics();
    for mode in [Mode::Thread, Mode::Async] {
        let h = Probe::options()
            .mode(mode)
            .max_workers(1)
            .init(Arc::default())
            .unwrap();
        let gate = Gate::default();
        // The call is still running when the callbacks register, so they run where the
        // call completes (the worker's thread or task).
        let p = h.hold(gate.clone());
        p.on_done(|_| panic!("planned panic: a callback"));
        let (tx, rx) = std::sync::mpsc::channel();
        p.on_done(move |r| tx.send(r.is_ok()).unwrap());
        gate.open();
        let id = p
            .result_timeout(DEADLINE)
            .expect("the promise keeps its value");
        assert_eq!(
            rx.recv_timeout(DEADLINE),
            Ok(true),
            "{mode}: later callbacks still run"
        );
        // The one worker is alive and serves the next call.
        assert_eq!(h.id().result_timeout(DEADLINE).unwrap(), id, "{mode}");
        assert_eq!(h.twice(4).result_timeout(DEADLINE).unwrap(), 8, "{mode}");
        h.stop().unwrap();
    }
}

/// Records the message of every event at `ERROR` level.
#[derive(Clone, Default)]
struct Errors(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Errors {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::ERROR {
            let mut f = Fields(String::new());
            event.record(&mut f);
            self.0.lock().unwrap().push(f.0);
        }
    }
}

#[test]
fn a_callback_panic_is_reported_through_tracing_wherever_it_runs() {
    quiet_planned_panics();
    let errors = Errors::default();
    let subscriber = tracing_subscriber::registry().with(errors.clone());
    tracing::subscriber::with_default(subscriber, || {
        // Registered before the result: runs on the completing thread (here, this one).
        let (p, c) = Promise::<u8>::pending();
        p.on_done(|_| panic!("planned panic: before"));
        assert!(c.complete(Ok(1)));
        // Registered after: runs at once on the registering thread, which goes on.
        p.on_done(|_| panic!("planned panic: after"));
        assert_eq!(p.result().unwrap(), 1);
    });
    let errors = errors.0.lock().unwrap().clone();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].contains("planned panic: before"), "{errors:#?}");
    assert!(errors[1].contains("planned panic: after"), "{errors:#?}");
}
