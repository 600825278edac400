//! A looked-up pool's [`Transport`]: its one "worker" is the pool's owner. Calls go as wire
//! frames to the owner's `pool.<id>.call` subject with this handle's inbox as the reply
//! subject; the owner sends each through its own pool (its balancer, `max_queued_tasks`,
//! call limits, supervisors) to its instances, and publishes the reply frame back. The
//! supervisor, call table and deadlines on this side are the remote layer's, as for a
//! node's instance.
//!
//! The owner gone (stopped or died): a call sent then comes back at once as the server's
//! "no responders", and calls in flight end within [`OWNER_CHECK`](super::host::OWNER_CHECK)
//! (the inbox asks the owner every second): they fail with `Error::WorkerLost`, and so does
//! every later call (the handle does not re-place anything: the instances were the owner's).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::hosting::{frame, unframe};
use super::names::{OWNER_ANSWER, Record, call_subject, info_subject};
use super::{Cluster, SWEEP, run};
use crate::remote::{Ending, Inbound, Peer, PlaceError, Placed, Transport};
use crate::sync::os::{Arc, AtomicBool, Mutex, Ordering, lock};
use crate::wire::{CallHeader, Envelope, Kind, WireError};

/// The owner of a pool found by name, as a transport.
pub(crate) struct ViaOwner {
    pub(crate) cluster: Cluster,
    pub(crate) record: Record,
    pub(crate) max: usize,
}

impl ViaOwner {
    fn owner(&self) -> String {
        let i = &self.record.info;
        format!(
            "pool `{}`'s owner (process {} on `{}`)",
            i.name.as_deref().unwrap_or(&i.id),
            i.owner_pid,
            i.owner_host
        )
    }
}

impl Transport for ViaOwner {
    fn place(
        &self,
        worker: &'static str,
        schema: u64,
        _args: &[u8],
        _stopped: &dyn Fn() -> bool,
    ) -> Result<Placed, PlaceError> {
        let info = &self.record.info;
        if worker != info.worker {
            return Err(PlaceError::Init(format!(
                "{} runs `{}`, not `{worker}`",
                self.owner(),
                info.worker
            )));
        }
        if schema != self.record.schema {
            return Err(PlaceError::Schema(WireError::SchemaMismatch {
                worker: worker.to_string(),
                local: schema,
                peer: self.record.schema,
                peer_id: info.owner_pid,
            }));
        }
        let client = self.cluster.client().clone();
        let inbox = client.new_inbox();
        let info_subject = info_subject(&self.cluster, &info.id);
        let sub = {
            let client = client.clone();
            let inbox = inbox.clone();
            let asked = info_subject.clone();
            run(async move {
                let sub = client.subscribe(inbox).await.map_err(|e| e.to_string())?;
                match tokio::time::timeout(OWNER_ANSWER, client.request(asked, Vec::new().into()))
                    .await
                {
                    Ok(Err(e))
                        if e.kind() == async_nats::client::RequestErrorKind::NoResponders =>
                    {
                        Err(String::new())
                    }
                    _ => Ok(sub),
                }
            })
        };
        let sub = sub.map_err(|e| {
            if e.is_empty() {
                // Never a restart: the instances were the owner's.
                PlaceError::Init(format!("{} is gone (it stopped or died)", self.owner()))
            } else {
                PlaceError::Other(e)
            }
        })?;
        let shared = Arc::new(Flight::default());
        let peer = Arc::new(OwnerPeer {
            client,
            subject: call_subject(&self.cluster, &info.id),
            inbox,
            owner: self.owner(),
            shared: shared.clone(),
        });
        let inbound = OwnerInbox {
            sub,
            cluster: self.cluster.clone(),
            disconnects: self.cluster.disconnects(),
            info_subject,
            owner: self.owner(),
            shared,
            max: self.max,
            tick: None,
            asked: Instant::now(),
        };
        Ok(Placed {
            peer,
            inbound: Box::new(inbound),
        })
    }
}

/// What the peer and its inbox share: the calls in flight, and how the peer ended.
#[derive(Default)]
struct Flight {
    calls: Mutex<HashSet<u64>>,
    /// Asked to finish (detach): the inbox ends once no call is in flight.
    shutting: AtomicBool,
    killed: Mutex<Option<String>>,
    dead: AtomicBool,
    wake: tokio::sync::Notify,
}

struct OwnerPeer {
    client: async_nats::Client,
    subject: String,
    inbox: String,
    owner: String,
    shared: Arc<Flight>,
}

impl Peer for OwnerPeer {
    fn id(&self) -> u32 {
        0
    }

    fn location(&self) -> Option<String> {
        Some(self.owner.clone())
    }

    fn send(&self, kind: Kind, id: u64, payload: Vec<u8>, _idle: bool) {
        match kind {
            Kind::Call => {}
            Kind::Shutdown => {
                self.shared.shutting.store(true, Ordering::Release);
                self.shared.wake.notify_one();
                return;
            }
            // A cancel stays on this side (the call's promise is resolved here); the
            // owner's instance runs the call to its end.
            _ => return,
        }
        lock(&self.shared.calls).insert(id);
        let bytes = frame(kind, id, &payload);
        let sent = crate::runtime::block_on(self.client.publish_with_reply(
            self.subject.clone(),
            self.inbox.clone(),
            bytes.into(),
        ));
        if let Err(e) = sent {
            self.kill(format!("publishing to {} failed: {e}", self.owner));
        }
    }

    fn call(&self, id: u64, head: CallHeader, request: Vec<u8>, _idle: bool) {
        let mut payload = Vec::with_capacity(crate::wire::CALL_HEADER_MAX + request.len());
        head.encode_into(&mut payload);
        payload.extend_from_slice(&request);
        self.send(Kind::Call, id, payload, false);
    }

    fn shutdown(&self) {
        self.send(Kind::Shutdown, 0, Vec::new(), false);
    }

    fn kill(&self, why: String) {
        lock(&self.shared.killed).get_or_insert(why);
        self.shared.dead.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }

    fn end(&self, _stopping: bool, _grace: Duration) -> Ending {
        Ending {
            status: Some(self.owner.clone()),
            killed: lock(&self.shared.killed).take(),
        }
    }
}

struct OwnerInbox {
    sub: async_nats::Subscriber,
    cluster: Cluster,
    disconnects: u64,
    info_subject: String,
    owner: String,
    shared: Arc<Flight>,
    max: usize,
    tick: Option<tokio::time::Interval>,
    /// When the owner was last asked whether it is there.
    asked: Instant,
}

fn gone(why: String) -> WireError {
    WireError::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        why,
    ))
}

impl Inbound for OwnerInbox {
    fn next(&mut self) -> Result<Option<Envelope>, WireError> {
        let OwnerInbox {
            sub,
            cluster,
            disconnects,
            info_subject,
            owner,
            shared,
            max,
            tick,
            asked,
        } = self;
        crate::runtime::block_on(async {
            let tick = tick.get_or_insert_with(|| {
                let mut t = tokio::time::interval_at(tokio::time::Instant::now() + SWEEP, SWEEP);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            loop {
                if shared.dead.load(Ordering::Acquire) {
                    let why = lock(&shared.killed).clone().unwrap_or_default();
                    return Err(gone(format!("killed: {why}")));
                }
                if shared.shutting.load(Ordering::Acquire) && lock(&shared.calls).is_empty() {
                    return Ok(None);
                }
                tokio::select! {
                    msg = sub.next() => {
                        let Some(msg) = msg else {
                            return Err(gone("the inbox subscription ended".into()));
                        };
                        if msg.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
                            return Err(gone(format!("{owner} is gone (it stopped or died)")));
                        }
                        let env = unframe(&msg.payload, *max)?;
                        lock(&shared.calls).remove(&env.id);
                        return Ok(Some(env));
                    }
                    () = shared.wake.notified() => {}
                    _ = tick.tick() => {
                        if cluster.disconnects() != *disconnects {
                            return Err(gone("the connection to the NATS server dropped".into()));
                        }
                        if asked.elapsed() >= super::host::OWNER_CHECK
                            && !lock(&shared.calls).is_empty()
                        {
                            *asked = Instant::now();
                            let client = cluster.client().clone();
                            let ask = client.request(info_subject.clone(), Vec::new().into());
                            if let Ok(Err(e)) = tokio::time::timeout(OWNER_ANSWER, ask).await
                                && e.kind() == async_nats::client::RequestErrorKind::NoResponders
                            {
                                return Err(gone(format!("{owner} is gone (it stopped or died)")));
                            }
                        }
                    }
                }
            }
        })
    }
}
