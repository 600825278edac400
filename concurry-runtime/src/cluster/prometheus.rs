//! [`Node::metrics_listen`] (feature `prometheus`): a node serves Prometheus text at
//! `/metrics`, through `metrics-exporter-prometheus` and its own HTTP listener: the node's
//! gauges and every pool metric of its process (`crate::metrics`).

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;

use super::node::Node;
use super::protocol::Beat;
use crate::error::{ConfigError, Error};
use crate::metrics::{NODE_CAPACITY, NODE_DRAINING, NODE_FREE, NODE_INSTANCES};
use crate::sync::os::{Arc, Mutex, lock};

/// How often the node's gauges are brought up to date (at most; a faster heartbeat is
/// followed).
const REFRESH: Duration = Duration::from_secs(1);

impl Node {
    /// Serves Prometheus text at `http://<addr>/metrics` while the node runs (any path
    /// answers the same): the node's gauges `concurry_node_capacity`, `concurry_node_free`,
    /// `concurry_node_instances` and `concurry_node_draining` (label `node`), the depth of the
    /// namespace's task queues `concurry_task_queue_depth` (labels `queue`, `priority`;
    /// sampled every 5 s, when the binary has remote tasks), and every pool metric of this
    /// process (see [`concurry::metrics`](crate::metrics)). Installs the
    /// exporter as the process's `metrics` recorder when the node starts.
    ///
    /// ```no_run
    /// use concurry::cluster::Node;
    ///
    /// # fn main() -> Result<(), concurry::Error> {
    /// Node::connect("nats://10.0.0.5:4222")?
    ///     .name("gpu-1")
    ///     .metrics_listen(([0, 0, 0, 0], 9464))
    ///     .serve()?; // curl http://gpu-1:9464/metrics
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// At [`start`](Node::start) / [`serve`](Node::serve): [`Error::Config`] when the
    /// address cannot be listened on, or when this process already has a `metrics`
    /// recorder (the program's own, or another node's: one per process).
    pub fn metrics_listen(mut self, addr: impl Into<SocketAddr>) -> Self {
        self.metrics = Some(addr.into());
        self
    }
}

/// Starts the exporter on `addr` and the task keeping the node's gauges current; their
/// handles, aborted when the node drains.
pub(super) fn start(
    addr: SocketAddr,
    state: Arc<Mutex<Beat>>,
    heartbeat: Duration,
    cluster: &super::Cluster,
) -> Result<Vec<tokio::task::AbortHandle>, Error> {
    let cluster = cluster.clone();
    super::run(async move {
        let refused =
            |fix: String| Error::from(ConfigError::new("metrics_listen", addr.to_string(), fix));
        // Binds the listener now, so a taken port is an error here, not later.
        let (recorder, exporter) = PrometheusBuilder::new()
            .with_http_listener(addr)
            .build()
            .map_err(|e| {
                refused(format!(
                    "could not serve Prometheus metrics there ({e}); pick a free port"
                ))
            })?;
        ::metrics::set_global_recorder(recorder).map_err(|_| {
            refused(
                "this process already has a `metrics` recorder (its own, or another node's \
                 metrics_listen: one per process); serve that recorder's metrics instead"
                    .to_string(),
            )
        })?;
        let serve = tokio::spawn(async move {
            if let Err(e) = exporter.await {
                tracing::warn!("concurry node: the /metrics listener stopped: {e:?}");
            }
        });
        let gauges = tokio::spawn(keep_gauges(state, heartbeat.min(REFRESH)));
        let mut tasks = vec![serve.abort_handle(), gauges.abort_handle()];
        if !crate::remote::REMOTE_TASKS.is_empty() {
            let queues = tokio::spawn(super::tasks::inspect::keep_queue_gauges(cluster));
            tasks.push(queues.abort_handle());
        }
        tracing::info!("concurry node: Prometheus metrics at http://{addr}/metrics");
        Ok(tasks)
    })
}

/// The node's tasks with the exporter's; if the node could not register, the exporter stops.
pub(super) fn chain(
    tasks: Result<Vec<tokio::task::AbortHandle>, Error>,
    exporter: Vec<tokio::task::AbortHandle>,
) -> Result<Vec<tokio::task::AbortHandle>, Error> {
    match tasks {
        Ok(tasks) => Ok(tasks.into_iter().chain(exporter).collect()),
        Err(e) => {
            exporter.iter().for_each(tokio::task::AbortHandle::abort);
            Err(e)
        }
    }
}

/// Sets the node's gauges from its advertised state, every `every`.
async fn keep_gauges(state: Arc<Mutex<Beat>>, every: Duration) {
    let node = lock(&state).name.clone();
    let capacity = ::metrics::gauge!(NODE_CAPACITY, "node" => node.clone());
    let free = ::metrics::gauge!(NODE_FREE, "node" => node.clone());
    let instances = ::metrics::gauge!(NODE_INSTANCES, "node" => node.clone());
    let draining = ::metrics::gauge!(NODE_DRAINING, "node" => node);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (c, f, d) = {
            let b = lock(&state);
            (b.capacity, b.free, b.draining)
        };
        capacity.set(f64::from(c));
        free.set(f64::from(f));
        instances.set(f64::from(c.saturating_sub(f)));
        draining.set(if d { 1.0 } else { 0.0 });
    }
}
