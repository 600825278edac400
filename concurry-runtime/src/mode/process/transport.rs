//! Process mode as a [`Transport`]: placing a worker spawns a child ([`parent::spawn`]);
//! its [`Peer`] is the socket's write half (with a writer thread) and the child to kill and
//! reap; its [`Inbound`] is the socket's read half.

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::time::Duration;

use super::ProcessConfig;
use super::limits::{Host, Replier};
use super::parent::{Spawned, abandon, reap, spawn};
use crate::limit::LimitSet;
use crate::remote::{Ending, Hosts, Inbound, LimitHost, Peer, PlaceError, Placed, Transport};
use crate::sync::os::{Arc, Mutex, lock};
use crate::wire::{CallHeader, Envelope, FrameReader, FrameWriter, Kind, WireError};

/// Child processes of the current executable.
pub(crate) struct Processes {
    pub(crate) config: ProcessConfig,
}

impl Transport for Processes {
    fn place(
        &self,
        worker: &'static str,
        schema: u64,
        args: &[u8],
        stopped: &dyn Fn() -> bool,
    ) -> Result<Placed, PlaceError> {
        let Spawned {
            child,
            pid,
            mut reader,
            mut writer,
        } = spawn(worker, schema, args, &self.config, stopped)?;
        reader.set_max(self.config.max_message_size);
        writer.set_max(self.config.max_message_size);
        let (outbox, outgoing) = crossbeam_channel::unbounded();
        let peer = Arc::new(Connected {
            pid,
            io: Mutex::new(writer),
            outbox,
            writer: Mutex::new(None),
            child: Mutex::new(Some(child)),
            killed: Mutex::new(None),
        });
        let p = peer.clone();
        let started = std::thread::Builder::new()
            .name(format!("concurry-proc-{pid}-w"))
            .spawn(move || p.write_loop(&outgoing));
        match started {
            Ok(w) => *lock(&peer.writer) = Some(w),
            Err(e) => {
                if let Some(child) = lock(&peer.child).take() {
                    abandon(child);
                }
                return Err(PlaceError::Other(format!(
                    "could not start a writer thread: {e}"
                )));
            }
        }
        Ok(Placed {
            peer,
            inbound: Box::new(Socket {
                reader,
                stall: self.config.stall_timeout,
            }),
        })
    }
}

/// A frame for the child, queued for the connection's writer thread.
enum Outgoing {
    Frame(Kind, u64, Vec<u8>),
    Call(u64, CallHeader, Vec<u8>),
    /// Flush and end the writer thread.
    Close,
}

/// One connected child.
struct Connected {
    pid: u32,
    /// The socket's write half: the writer thread's, and a caller's when the child is idle.
    io: Mutex<FrameWriter<UnixStream>>,
    /// Frames for the writer thread: sending never blocks the caller, even when the child
    /// is busy and its socket buffer is full.
    outbox: crossbeam_channel::Sender<Outgoing>,
    /// The writer thread, joined once the child is gone.
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Taken when the child is reaped; until then, kills go through here.
    child: Mutex<Option<Child>>,
    /// Why we killed the child, if we did.
    killed: Mutex<Option<String>>,
}

impl Connected {
    /// The writer thread: writes queued frames, as many as are waiting per flush, until
    /// `Close` or a failed write (which kills the child: its reader then fails the calls).
    fn write_loop(&self, outbox: &crossbeam_channel::Receiver<Outgoing>) {
        while let Ok(first) = outbox.recv() {
            let mut writer = lock(&self.io);
            let mut next = Some(first);
            while let Some(frame) = next.take() {
                let written = match frame {
                    Outgoing::Frame(kind, id, payload) => writer.write(kind, id, &payload),
                    Outgoing::Call(id, head, request) => writer.write_call(id, &head, &request),
                    Outgoing::Close => {
                        let _ = writer.flush();
                        return;
                    }
                };
                if let Err(e) = written {
                    drop(writer);
                    return self.kill(format!("writing to the worker process failed: {e}"));
                }
                next = outbox.try_recv().ok();
            }
            if let Err(e) = writer.flush() {
                drop(writer);
                return self.kill(format!("writing to the worker process failed: {e}"));
            }
        }
    }
}

impl Peer for Connected {
    fn id(&self) -> u32 {
        self.pid
    }

    fn send(&self, kind: Kind, id: u64, payload: Vec<u8>, _idle: bool) {
        // If the writer thread is gone, the connection is ending: its reader fails what
        // was in flight.
        let _ = self.outbox.send(Outgoing::Frame(kind, id, payload));
    }

    /// A call to an idle child (no call in flight: it is waiting to read) is written at
    /// once, saving the writer thread's wake-up on a round trip. Any other goes through the
    /// writer thread, since a busy child reads nothing and the write could block.
    fn call(&self, id: u64, head: CallHeader, request: Vec<u8>, idle: bool) {
        if idle
            && self.outbox.is_empty()
            && let Ok(mut io) = self.io.try_lock()
        {
            if let Err(e) = io.write_call(id, &head, &request).and_then(|()| io.flush()) {
                drop(io);
                // The reader sees the channel close and fails this call with the others.
                self.kill(format!("writing to the worker process failed: {e}"));
            }
            return;
        }
        let _ = self.outbox.send(Outgoing::Call(id, head, request));
    }

    fn shutdown(&self) {
        let queued = self
            .outbox
            .send(Outgoing::Frame(Kind::Shutdown, 0, Vec::new()));
        if queued.is_err()
            && let Some(child) = lock(&self.child).as_mut()
        {
            let _ = child.kill();
        }
    }

    fn kill(&self, why: String) {
        lock(&self.killed).get_or_insert(why);
        if let Some(child) = lock(&self.child).as_mut() {
            let _ = child.kill();
        }
    }

    fn end(&self, stopping: bool, grace: Duration) -> Ending {
        let child = lock(&self.child).take();
        let status = child.and_then(|c| if stopping { reap(c, grace) } else { abandon(c) });
        // The child is gone, so a write still blocked on its socket fails now.
        let _ = self.outbox.send(Outgoing::Close);
        if let Some(h) = lock(&self.writer).take() {
            let _ = h.join();
        }
        Ending {
            status: status.map(|s| s.to_string()),
            killed: lock(&self.killed).take(),
        }
    }
}

/// The socket's read half.
struct Socket {
    reader: FrameReader<BufReader<UnixStream>>,
    /// How long the rest of a begun frame may take (`stall_timeout`).
    stall: Duration,
}

impl Inbound for Socket {
    fn next(&mut self) -> Result<Option<Envelope>, WireError> {
        self.reader.read_stall_bounded(self.stall)
    }
}

/// The pool's limits, hosted here for each child (an empty set without limits: a child's
/// `limits()` requests are then answered, with errors naming the missing keys).
pub(crate) fn hosts(set: Option<&LimitSet>) -> Option<Hosts> {
    let set = set.cloned();
    Some(Arc::new(move || {
        Arc::new(Hosted(Host::new(set.as_ref()))) as Arc<dyn LimitHost>
    }))
}

struct Hosted(Arc<Host>);

/// Limit replies go back through the peer.
struct Through(Arc<dyn Peer>);

impl Replier for Through {
    fn reply(&self, lease: u64, payload: Vec<u8>) {
        self.0.send(Kind::LimitReply, lease, payload, false);
    }
}

impl LimitHost for Hosted {
    fn on_message(&self, env: Envelope, peer: &Arc<dyn Peer>) -> Result<(), WireError> {
        self.0.on_message(env, Arc::new(Through(peer.clone())))
    }

    fn close(&self) {
        self.0.close();
    }
}
