//! Named pools and the registry of a namespace's pools (`Mode::Cluster`).
//!
//! - **Registry**: every cluster pool's owner keeps a record (name or id, worker type,
//!   schema fingerprint, owner host and pid, instance count) in the JetStream KV bucket
//!   `CC_<ns>_pools`, under `name.<name>` for a named pool and `id.<id>` for another. A
//!   named pool's record is made with a KV `create`, so a name is held by one pool at a time.
//! - **Owner service**: the owner answers on `pool.<id>.info` (its live record: the
//!   instances per node now) and `pool.<id>.call` (calls of looked-up handles, one wire
//!   frame each, answered to the message's reply subject), from before its record is made
//!   until it stops or is dropped. A record whose owner does not answer (the server says
//!   "no responders" at once once the owner's connection closed) is stale: whoever meets it
//!   removes it (a claim of the name takes it over), so a dead owner's name is free at once.
//! - Released at `stop()` or drop: the service ends, then the record is deleted (only the
//!   revision this owner wrote).

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::hosting::{frame, unframe};
use super::{Cluster, check_token, run};
use crate::error::{ConfigError, Error};
use crate::sync::os::{Arc, AtomicBool, Mutex, Ordering, lock};
use crate::wire::{CallHeader, Fault, Kind};

/// How long a liveness question to a pool's owner may take (an owner busy past it counts
/// as alive: its name stays taken).
pub(crate) const OWNER_ANSWER: Duration = Duration::from_secs(1);

/// The first bytes of a pool record.
const MAGIC: [u8; 3] = *b"CCP";
/// The version of the pool records; another is refused.
const VERSION: u8 = 1;

/// One pool of a cluster, as [`Cluster::pools`] lists it.
///
/// ```no_run
/// use concurry::cluster::Cluster;
///
/// # fn main() -> Result<(), concurry::Error> {
/// let cluster = Cluster::connect("nats://127.0.0.1:4222")?;
/// for pool in cluster.pools()? {
///     let name = pool.name.as_deref().unwrap_or(&pool.id);
///     println!("{name}: {} x{} (owner pid {} on {})", pool.worker, pool.workers, pool.owner_pid, pool.owner_host);
///     for (node, n) in &pool.instances {
///         println!("  {n} on {node}");
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PoolInfo {
    /// The name it was started with (`.name(..)`), by which other processes look it up;
    /// `None` for a pool started without one.
    pub name: Option<String>,
    /// The pool's id: unique per pool (16 hex digits).
    pub id: String,
    /// The registered name of its worker type (`module::Type`).
    pub worker: String,
    /// How many instances it keeps (`max_workers`).
    pub workers: u32,
    /// The host name of the owner's machine (the process that started the pool).
    pub owner_host: String,
    /// The owner's process id.
    pub owner_pid: u32,
    /// Node name → instances of the pool there now (an instance being re-placed is not
    /// counted). Empty when the owner did not answer in time.
    pub instances: BTreeMap<String, u32>,
    /// Calls given to its instances and not finished yet, as its owner counts them (0 when
    /// the owner did not answer in time).
    pub in_flight: u64,
    /// Calls given to its instances since it started.
    pub dispatched: u64,
    /// Its limits now (hosted by the owner, shared by every instance): usage against
    /// capacity per key.
    pub limits: Vec<crate::limit::LimitStats>,
}

/// What the registry keeps of a pool (and an owner answers about itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) info: PoolInfo,
    /// The worker type's schema fingerprint in the owner's build.
    pub(crate) schema: u64,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        // A `Vec` sink cannot fail, and every field is a plain serde type.
        postcard::to_io(self, &mut out).expect("pool records always encode");
        out
    }

    fn decode(bytes: &[u8]) -> Result<Record, String> {
        if bytes.len() < 4 || bytes[..3] != MAGIC {
            return Err("not a concurry pool record (no `CCP` header)".into());
        }
        if bytes[3] != VERSION {
            return Err(format!(
                "pool record version {}, this build speaks {VERSION}",
                bytes[3]
            ));
        }
        postcard::from_bytes(&bytes[4..]).map_err(|e| format!("malformed pool record: {e}"))
    }
}

/// The subjects of the pool `id`'s owner service.
pub(crate) fn info_subject(cluster: &Cluster, id: &str) -> String {
    format!("cc.{}.pool.{id}.info", cluster.namespace())
}

/// Where looked-up handles send their calls to the pool `id`.
pub(crate) fn call_subject(cluster: &Cluster, id: &str) -> String {
    format!("cc.{}.pool.{id}.call", cluster.namespace())
}

fn bucket_name(cluster: &Cluster) -> String {
    format!("CC_{}_pools", cluster.namespace())
}

fn name_key(name: &str) -> String {
    format!("name.{name}")
}

/// Gets or creates the namespace's pool bucket (its stream made by hand: nats-server 2.9's
/// `$JS.API.INFO` lacks what async-nats' `create_key_value` needs), then opens it.
async fn bucket(client: async_nats::Client, bucket: String) -> Result<kv::Store, String> {
    if !client.server_info().jetstream {
        return Err("the server has no JetStream".into());
    }
    let js = async_nats::jetstream::new(client);
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        storage: StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: 1,
        discard: DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("could not create the KV bucket `{bucket}`: {e}"))?;
    js.get_key_value(bucket.clone())
        .await
        .map_err(|e| format!("could not open the KV bucket `{bucket}`: {e}"))
}

fn jetstream_error(cluster: &Cluster, why: &str) -> ConfigError {
    ConfigError::new(
        "cluster",
        cluster.url().to_string(),
        format!(
            "the pool registry needs JetStream ({why}); start the server with it \
             (`nats-server -js`)"
        ),
    )
}

/// What an owner's liveness question found.
enum Alive {
    /// It answered: its live record.
    Yes(Record),
    /// Nobody serves its subject: it stopped or died.
    No,
    /// No answer in time, or an answer we cannot read: counted as alive.
    Unsure,
}

async fn ask(client: &async_nats::Client, subject: String) -> Alive {
    match tokio::time::timeout(OWNER_ANSWER, client.request(subject, Vec::new().into())).await {
        Ok(Ok(msg)) => Record::decode(&msg.payload).map_or(Alive::Unsure, Alive::Yes),
        Ok(Err(e)) if e.kind() == async_nats::client::RequestErrorKind::NoResponders => Alive::No,
        _ => Alive::Unsure,
    }
}

/// What a pool's owner serves to looked-up handles.
pub(crate) trait Served: Send + Sync + 'static {
    /// Node name → instances there now.
    fn instances(&self) -> BTreeMap<String, u32>;

    /// Calls in flight, calls dispatched, and the limits' usage now (`Cluster::pools`).
    fn usage(&self) -> (u64, u64, Vec<crate::limit::LimitStats>) {
        (0, 0, Vec::new())
    }

    /// One call of a looked-up handle: `request` (encoded `W::Request`) under `head`;
    /// `reply` gets the reply's bytes (an encoded `Result<W::Response, Fault>`), once.
    fn call(&self, head: CallHeader, request: Vec<u8>, reply: Answer);
}

/// Where the reply to one call of a looked-up handle goes. Dropped unsent (the pool
/// stopped under the call), it says so: the caller never waits for nothing.
pub(crate) struct Answer(Option<Box<dyn FnOnce(Vec<u8>) + Send>>);

impl Answer {
    /// Sends the reply's bytes (an encoded `Result<W::Response, Fault>`).
    pub(crate) fn send(mut self, bytes: Vec<u8>) {
        if let Some(f) = self.0.take() {
            f(bytes);
        }
    }

    /// Sends `fault` as the reply.
    pub(crate) fn fault(self, fault: &Fault) {
        self.send(fault_reply(fault));
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(fault_reply(&Fault::Lost {
                message: "the pool's owner dropped the call (the pool stopped)".into(),
            }));
        }
    }
}

/// A reply's bytes saying the call failed with `fault` (decodes as `Result<R, Fault>`
/// for every `R`).
pub(crate) fn fault_reply(fault: &Fault) -> Vec<u8> {
    crate::wire::encode(&Err::<(), _>(fault.clone()), "fault").unwrap_or_default()
}

/// A pool's place in the registry, held by its owner (the pool's backend) until it stops.
pub(crate) struct Registration {
    client: async_nats::Client,
    store: Option<kv::Store>,
    key: String,
    /// The record's revision this owner wrote.
    revision: u64,
    id: String,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    served: Arc<std::sync::OnceLock<Arc<dyn Served>>>,
    released: AtomicBool,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("key", &self.key)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// Starts the owner service of a new pool of `worker` and records the pool: under
    /// `name` (which must be free, or held by an owner that is gone) if given.
    ///
    /// # Errors
    ///
    /// [`Error::Config`]: the name is not a subject token, it is taken (naming its holder
    /// and the fix), or (for a name) the server has no JetStream.
    pub(crate) fn claim(
        cluster: &Cluster,
        name: Option<&str>,
        worker: &str,
        schema: u64,
        workers: u32,
    ) -> Result<Arc<Registration>, Error> {
        if let Some(name) = name {
            check_token("name", name)?;
        }
        let id = format!("{:016x}", crate::rand::id());
        let record = Record {
            info: PoolInfo {
                name: name.map(str::to_string),
                id: id.clone(),
                worker: worker.to_string(),
                workers,
                owner_host: super::node::host_name(),
                owner_pid: std::process::id(),
                instances: BTreeMap::new(),
                in_flight: 0,
                dispatched: 0,
                limits: Vec::new(),
            },
            schema,
        };
        let served: Arc<std::sync::OnceLock<Arc<dyn Served>>> = Arc::default();
        let client = cluster.client().clone();
        let tasks = serve(cluster, &record, served.clone())
            .map_err(|e| ConfigError::new("cluster", cluster.url().to_string(), e))?;
        let key = match name {
            Some(n) => name_key(n),
            None => format!("id.{id}"),
        };
        let claimed = {
            let client = client.clone();
            let bucket_name = bucket_name(cluster);
            let key = key.clone();
            let bytes = record.encode();
            let named = name.is_some();
            let namespace = cluster.namespace().to_string();
            let ns = cluster.clone();
            run(async move {
                let store = match bucket(client.clone(), bucket_name).await {
                    Ok(s) => s,
                    // An unnamed pool works without the registry (it is just not listed).
                    Err(e) if !named => {
                        tracing::debug!("concurry cluster: the pool is not listed: {e}");
                        return Ok((None, 0));
                    }
                    Err(e) => return Err(Claim::Server(e)),
                };
                if !named {
                    let rev = store
                        .put(&key, bytes.into())
                        .await
                        .map_err(|e| Claim::Server(e.to_string()))?;
                    return Ok((Some(store), rev));
                }
                for _ in 0..5 {
                    match store.create(&key, bytes.clone().into()).await {
                        Ok(rev) => return Ok((Some(store), rev)),
                        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                        Err(e) => return Err(Claim::Server(e.to_string())),
                    }
                    let entry = match store.entry(&key).await {
                        Ok(Some(e)) if e.operation == kv::Operation::Put => e,
                        // Deleted meanwhile: try again.
                        Ok(_) => continue,
                        Err(e) => return Err(Claim::Server(e.to_string())),
                    };
                    let holder = Record::decode(&entry.value).ok();
                    let alive = match &holder {
                        Some(h) => ask(&client, info_subject(&ns, &h.info.id)).await,
                        None => Alive::No,
                    };
                    match (alive, holder) {
                        (Alive::No, _) => {
                            // Its owner is gone: take the name over (only that revision).
                            match store
                                .update(&key, bytes.clone().into(), entry.revision)
                                .await
                            {
                                Ok(rev) => return Ok((Some(store), rev)),
                                Err(_) => continue,
                            }
                        }
                        (_, Some(h)) => return Err(Claim::Taken(Box::new(h), namespace)),
                        (_, None) => continue,
                    }
                }
                Err(Claim::Server(
                    "the name changed hands too often while it was being claimed".into(),
                ))
            })
        };
        let abort = |tasks: &[tokio::task::AbortHandle]| tasks.iter().for_each(|t| t.abort());
        let (store, revision) = match claimed {
            Ok(v) => v,
            Err(e) => {
                abort(&tasks);
                let name = name.unwrap_or_default();
                return Err(match e {
                    Claim::Server(why) => jetstream_error(cluster, &why).into(),
                    Claim::Taken(h, ns) => ConfigError::new(
                        "name",
                        format!("{name:?}"),
                        format!(
                            "the name is taken in namespace `{ns}`: pool `{name}` of `{}` is held \
                             by process {} on `{}` (pool id {}); give this pool another name, \
                             or stop that pool first (a name is free again once its owner \
                             stops or dies)",
                            h.info.worker, h.info.owner_pid, h.info.owner_host, h.info.id
                        ),
                    )
                    .into(),
                });
            }
        };
        Ok(Arc::new(Registration {
            client,
            store,
            key,
            revision,
            id,
            tasks: Mutex::new(tasks),
            served,
            released: AtomicBool::new(false),
        }))
    }

    /// From now on, calls of looked-up handles go to `served` (before it, they fail with
    /// `WorkerLost`: the pool is still starting).
    pub(crate) fn serve(&self, served: Arc<dyn Served>) {
        let _ = self.served.set(served);
    }

    /// Ends the owner service and deletes the record (if it is still ours); once.
    pub(crate) fn release(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        let Some(store) = self.store.clone() else {
            return;
        };
        let key = self.key.clone();
        let revision = self.revision;
        let client = self.client.clone();
        let delete = async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                let _ = store.delete_expect_revision(&key, Some(revision)).await;
                let _ = client.flush().await;
            })
            .await;
        };
        run(delete);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.release();
    }
}

/// Why a claim failed.
enum Claim {
    Server(String),
    Taken(Box<Record>, String),
}

/// Subscribes to the owner service's subjects and starts answering them; the tasks'
/// handles.
fn serve(
    cluster: &Cluster,
    record: &Record,
    served: Arc<std::sync::OnceLock<Arc<dyn Served>>>,
) -> Result<Vec<tokio::task::AbortHandle>, String> {
    let client = cluster.client().clone();
    let info = info_subject(cluster, &record.info.id);
    let calls = call_subject(cluster, &record.info.id);
    let record = record.clone();
    run(async move {
        let mut infos = client
            .subscribe(info)
            .await
            .map_err(|e| format!("could not subscribe to the pool's subjects: {e}"))?;
        let mut calls = client
            .subscribe(calls)
            .await
            .map_err(|e| format!("could not subscribe to the pool's subjects: {e}"))?;
        // Served by the server before the record exists: a liveness question finds us.
        client.flush().await.map_err(|e| e.to_string())?;
        let rt = crate::runtime::runtime();
        let answering = {
            let client = client.clone();
            let served = served.clone();
            rt.spawn(async move {
                while let Some(msg) = infos.next().await {
                    let Some(to) = msg.reply else { continue };
                    let mut live = record.clone();
                    if let Some(s) = served.get() {
                        live.info.instances = s.instances();
                        (live.info.in_flight, live.info.dispatched, live.info.limits) = s.usage();
                    }
                    let _ = client.publish(to, live.encode().into()).await;
                }
            })
        };
        let calling = rt.spawn(async move {
            while let Some(msg) = calls.next().await {
                let Some(to) = msg.reply else { continue };
                let env = match unframe(&msg.payload, usize::MAX) {
                    Ok(env) if env.kind == Kind::Call => env,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!("concurry cluster: a looked-up handle sent garbage: {e}");
                        continue;
                    }
                };
                let id = env.id;
                let client2 = client.clone();
                let reply = Answer(Some(Box::new(move |bytes: Vec<u8>| {
                    let out = frame(Kind::Reply, id, &bytes);
                    crate::runtime::runtime().spawn(async move {
                        let _ = client2.publish(to, out.into()).await;
                    });
                })));
                let (head, request) = match CallHeader::split(&env.payload) {
                    Ok((h, r)) => (h, r.to_vec()),
                    Err(e) => {
                        reply.fault(&Fault::Protocol {
                            message: e.to_string(),
                        });
                        continue;
                    }
                };
                match served.get() {
                    Some(s) => s.call(head, request, reply),
                    None => reply.fault(&Fault::Lost {
                        message: "the pool is still starting; try again".into(),
                    }),
                }
            }
        });
        Ok(vec![answering.abort_handle(), calling.abort_handle()])
    })
}

/// The live record of the pool named `name`.
///
/// # Errors
///
/// [`Error::Config`] naming the name and the pools seen when no live pool has it, or
/// naming the fix when the server has no JetStream.
pub(crate) fn find(cluster: &Cluster, name: &str) -> Result<Record, Error> {
    check_token("name", name)?;
    let client = cluster.client().clone();
    let bucket_name = bucket_name(cluster);
    let key = name_key(name);
    let ns = cluster.clone();
    let found = run(async move {
        let store = bucket(client.clone(), bucket_name).await?;
        let entry = store.entry(&key).await.map_err(|e| e.to_string())?;
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
            return Ok::<_, String>(None);
        };
        let Ok(record) = Record::decode(&entry.value) else {
            return Ok(None);
        };
        match ask(&client, info_subject(&ns, &record.info.id)).await {
            Alive::Yes(live) => Ok(Some(live)),
            Alive::Unsure => Ok(Some(record)),
            Alive::No => {
                let _ = store
                    .delete_expect_revision(&key, Some(entry.revision))
                    .await;
                Ok(None)
            }
        }
    });
    match found {
        Ok(Some(r)) => Ok(r),
        Ok(None) => {
            let seen: Vec<String> = cluster
                .pools()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| p.name)
                .map(|n| format!("`{n}`"))
                .collect();
            let seen = if seen.is_empty() {
                "none".to_string()
            } else {
                seen.join(", ")
            };
            Err(ConfigError::new(
                "name",
                format!("{name:?}"),
                format!(
                    "no pool of that name is running in namespace `{}` (named pools seen: \
                     {seen}); start one with `.name({name:?})` in `Mode::Cluster`, or check \
                     the name and the namespace",
                    cluster.namespace()
                ),
            )
            .into())
        }
        Err(why) => Err(jetstream_error(cluster, &why).into()),
    }
}

impl Cluster {
    /// The pools running in this namespace (any process's), named ones and others: what
    /// each runs and where its instances are now, as each owner answers; a pool whose owner
    /// stopped or died is left out (and its record removed).
    ///
    /// Asks every owner at once; takes a round trip, at most about a second for an owner
    /// that does not answer (listed then with no instances).
    ///
    /// ```no_run
    /// use concurry::cluster::Cluster;
    ///
    /// # fn main() -> Result<(), concurry::Error> {
    /// let cluster = Cluster::connect("nats://127.0.0.1:4222")?;
    /// let named: Vec<String> = cluster.pools()?.into_iter().filter_map(|p| p.name).collect();
    /// println!("named pools: {named:?}");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the server when it has no JetStream (the registry is a KV
    /// bucket) or the bucket cannot be read.
    pub fn pools(&self) -> Result<Vec<PoolInfo>, Error> {
        let client = self.client().clone();
        let bucket_name = bucket_name(self);
        let me = self.clone();
        let listed = run(async move {
            let store = bucket(client.clone(), bucket_name).await?;
            let mut keys = store.keys().await.map_err(|e| e.to_string())?;
            let mut entries = Vec::new();
            while let Some(key) = keys.next().await {
                let Ok(key) = key else { continue };
                if let Ok(Some(e)) = store.entry(&key).await
                    && e.operation == kv::Operation::Put
                    && let Ok(r) = Record::decode(&e.value)
                {
                    entries.push((key, e.revision, r));
                }
            }
            let asks = entries
                .iter()
                .map(|(_, _, r)| ask(&client, info_subject(&me, &r.info.id)));
            let answers = futures_util::future::join_all(asks).await;
            let mut out = Vec::new();
            for ((key, revision, record), alive) in entries.into_iter().zip(answers) {
                match alive {
                    Alive::Yes(live) => out.push(live.info),
                    Alive::Unsure => out.push(record.info),
                    Alive::No => {
                        let _ = store.delete_expect_revision(&key, Some(revision)).await;
                    }
                }
            }
            Ok::<_, String>(out)
        });
        let mut pools = listed.map_err(|why| jetstream_error(self, &why))?;
        pools.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        Ok(pools)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            info: PoolInfo {
                name: Some("cache".into()),
                id: "00ff".into(),
                worker: "a::Cache".into(),
                workers: 2,
                owner_host: "h".into(),
                owner_pid: 7,
                instances: [("n1".to_string(), 2)].into_iter().collect(),
                in_flight: 1,
                dispatched: 5,
                limits: Vec::new(),
            },
            schema: 9,
        }
    }

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        let r = record();
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        assert!(Record::decode(b"").unwrap_err().contains("CCP"));
        let mut other = r.encode();
        other[3] = 9;
        assert!(Record::decode(&other).unwrap_err().contains("version 9"));
        let full = r.encode();
        for n in 0..full.len() {
            let _ = Record::decode(&full[..n]);
        }
    }

    #[test]
    fn a_fault_reply_decodes_as_any_reply() {
        let bytes = fault_reply(&Fault::Lost {
            message: "gone".into(),
        });
        let r: Result<u64, Fault> = crate::wire::decode(&bytes, "reply").unwrap();
        assert_eq!(
            r,
            Err(Fault::Lost {
                message: "gone".into()
            })
        );
        let r: Result<String, Fault> = crate::wire::decode(&bytes, "reply").unwrap();
        assert!(r.is_err());
    }
}
