//! The child side: the hook that enters the child role before `main`, and the serve loop.

use std::io::{BufReader, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{RemoteWorker, env, lookup};
use crate::error::panic_message;
use crate::sync::OnceLock;
use crate::wire::{Fault, FrameReader, FrameWriter, Hello, Kind, WireError, decode, encode};

/// Exit codes of a child (seen by the parent when the child fails to start).
pub(crate) mod exit {
    /// Served until told to stop, or the parent went away.
    pub(crate) const OK: i32 = 0;
    /// The environment or the socket was unusable.
    pub(crate) const SETUP: i32 = 70;
    /// The worker type is not in this binary's registry.
    pub(crate) const UNKNOWN_WORKER: i32 = 71;
    /// The parent broke the protocol.
    pub(crate) const PROTOCOL: i32 = 72;
    /// The constructor failed.
    pub(crate) const INIT: i32 = 73;
}

/// Before `main`: if this process was started as a worker child, serve and exit.
///
/// Soundness: this runs from `.init_array`, after the C runtime and Rust's std are usable on
/// Linux (std needs no initialisation for what we use: environment, sockets, threads, panics
/// caught by `catch_unwind`), and before `main`. It reads the registry, which the linker
/// filled, and never returns in a child (`process::exit`). In any other process it only reads
/// one environment variable.
#[ctor::ctor]
fn enter_child_role() {
    if std::env::var_os(env::WORKER).is_some() {
        std::process::exit(child_main());
    }
}

/// The reading and writing halves of the child's connection to its parent.
#[derive(Debug)]
pub(crate) struct Channel {
    pub(crate) reader: FrameReader<BufReader<UnixStream>>,
    pub(crate) writer: FrameWriter<UnixStream>,
}

impl Channel {
    fn send<T: serde::Serialize>(
        &mut self,
        kind: Kind,
        id: u64,
        value: &T,
        what: &'static str,
    ) -> Result<(), WireError> {
        let payload = encode(value, what)?;
        self.writer.write(kind, id, &payload)?;
        self.writer.flush()
    }

    /// Tells the parent why the child gives up, best effort.
    fn refuse(&mut self, message: String) {
        let _ = self.send(Kind::Fault, 0, &Fault::Protocol { message }, "fault");
    }
}

/// The child's socket, for [`write_raw_for_tests`] only.
static RAW: OnceLock<UnixStream> = OnceLock::new();

/// Writes `bytes` as they are onto this child's channel to its parent, bypassing the
/// framing: tests use it to prove the parent survives garbage. Fails outside a worker child.
#[doc(hidden)]
pub fn write_raw_for_tests(bytes: &[u8]) -> std::io::Result<()> {
    let mut s = RAW.get().ok_or(std::io::ErrorKind::NotConnected)?;
    s.write_all(bytes)?;
    s.flush()
}

/// Connects to the parent, says hello and serves the worker named in the environment.
fn child_main() -> i32 {
    let (Some(worker), Some(socket), Some(token)) = (
        std::env::var(env::WORKER).ok(),
        std::env::var(env::SOCKET).ok(),
        std::env::var(env::TOKEN)
            .ok()
            .and_then(|t| t.parse::<u64>().ok()),
    ) else {
        eprintln!(
            "concurry: {} is set but {} or {} is missing or invalid",
            env::WORKER,
            env::SOCKET,
            env::TOKEN
        );
        return exit::SETUP;
    };
    let stream = match SocketAddr::from_abstract_name(socket.as_bytes())
        .and_then(|addr| UnixStream::connect_addr(&addr))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("concurry: worker child could not connect to its parent: {e}");
            return exit::SETUP;
        }
    };
    if let Ok(raw) = stream.try_clone() {
        let _ = RAW.set(raw);
    }
    let mut channel = match stream.try_clone() {
        Ok(w) => Channel {
            reader: FrameReader::new(BufReader::with_capacity(64 << 10, stream)),
            writer: FrameWriter::new(w),
        },
        Err(e) => {
            eprintln!("concurry: worker child could not use its socket: {e}");
            return exit::SETUP;
        }
    };
    let hello = Hello {
        worker: worker.clone(),
        pid: std::process::id(),
        token,
    };
    if channel.send(Kind::Hello, 0, &hello, "hello").is_err() {
        return exit::SETUP;
    }
    match lookup(&worker) {
        Some(entry) => (entry.serve)(channel),
        None => {
            channel.refuse(format!(
                "worker type `{worker}` is not registered in this binary ({}); \
                 it needs `#[worker(remote)]` or `concurry::register_remote!`",
                std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ));
            exit::UNKNOWN_WORKER
        }
    }
}

/// Builds `W` from the `Init` message, then answers calls until `Shutdown` or the parent
/// goes away.
pub(crate) fn serve<W: RemoteWorker>(mut ch: Channel) -> i32 {
    let mut worker = match construct::<W>(&mut ch) {
        Ok(w) => w,
        Err(code) => return code,
    };
    loop {
        let env = match ch.reader.read() {
            Ok(Some(env)) => env,
            // The parent closed the channel (or died): nothing left to serve.
            Ok(None) => return exit::OK,
            Err(e) if e.is_disconnect() => return exit::OK,
            Err(e) => {
                ch.refuse(e.to_string());
                return exit::PROTOCOL;
            }
        };
        match env.kind {
            Kind::Call => {
                let reply: Result<W::Response, Fault> =
                    match decode::<W::Request>(&env.payload, "request") {
                        Ok(req) => {
                            catch_unwind(AssertUnwindSafe(|| worker.dispatch(req))).map_err(|p| {
                                Fault::Panicked {
                                    message: panic_message(&*p),
                                }
                            })
                        }
                        Err(e) => Err(Fault::Protocol {
                            message: e.to_string(),
                        }),
                    };
                let payload = encode(&reply, "reply").or_else(|e| {
                    encode(
                        &Err::<W::Response, _>(Fault::Protocol {
                            message: e.to_string(),
                        }),
                        "reply",
                    )
                });
                let written = match payload {
                    Ok(p) => ch.writer.write(Kind::Reply, env.id, &p),
                    Err(e) => Err(e),
                };
                // Replies are batched while more calls are already buffered.
                let flushed = if ch.reader.get_ref().buffer().is_empty() {
                    ch.writer.flush()
                } else {
                    Ok(())
                };
                if written.and(flushed).is_err() {
                    return exit::OK;
                }
            }
            Kind::Shutdown => {
                let _ = ch.writer.flush();
                return exit::OK;
            }
            other => {
                ch.refuse(format!(
                    "unexpected `{other:?}` message while serving calls"
                ));
                return exit::PROTOCOL;
            }
        }
    }
}

fn construct<W: RemoteWorker>(ch: &mut Channel) -> Result<W, i32> {
    let env = match ch.reader.read() {
        Ok(Some(env)) if env.kind == Kind::Init => env,
        Ok(None) => return Err(exit::OK),
        Ok(Some(env)) => {
            ch.refuse(format!("expected `Init`, got `{:?}`", env.kind));
            return Err(exit::PROTOCOL);
        }
        Err(e) => {
            ch.refuse(e.to_string());
            return Err(exit::PROTOCOL);
        }
    };
    let args = match decode::<W::Args>(&env.payload, "constructor arguments") {
        Ok(a) => a,
        Err(e) => {
            ch.refuse(e.to_string());
            return Err(exit::PROTOCOL);
        }
    };
    let built = match catch_unwind(AssertUnwindSafe(|| W::construct(args))) {
        Ok(Ok(w)) => Ok(w),
        Ok(Err(e)) => Err(Fault::Init {
            message: e.to_string(),
        }),
        Err(p) => Err(Fault::Init {
            message: format!("the constructor panicked: {}", panic_message(&*p)),
        }),
    };
    let ready: Result<(), Fault> = built.as_ref().map(|_| ()).map_err(Clone::clone);
    let sent = ch.send(Kind::Ready, 0, &ready, "ready");
    match (built, sent) {
        (Ok(w), Ok(())) => Ok(w),
        (Ok(_), Err(_)) => Err(exit::OK),
        (Err(_), _) => Err(exit::INIT),
    }
}
