//! The registry of remote worker types: [`RemoteWorker`] (a worker whose arguments,
//! requests and responses are serde types), and every such type of the binary, collected by
//! the linker ([`register_remote!`](crate::register_remote)), so a process serving workers
//! (a child, later a cluster node) finds one by name.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::serve::{Served, Unbuilt, construct};
use crate::error::{ConfigError, Error};

/// Builds an instance from its encoded constructor arguments.
pub(crate) type Construct = fn(&[u8]) -> Result<Box<dyn Served>, Unbuilt>;

/// A worker type that can run in a child process: the serde-capable counterpart of the
/// in-process worker trait.
///
/// `#[worker(remote)]` implements it (with a `Request` enum holding one variant per method
/// and a `Response` enum likewise); implement it by hand only for a protocol of your own.
///
/// # How a child starts
///
/// The parent re-executes [`std::env::current_exe`] with `CONCURRY_WORKER=<type name>` and the
/// name of a socket in its environment. A constructor function of this crate (the `ctor`
/// crate's `.init_array` hook) runs before `main` in every binary that links concurry: when it
/// sees `CONCURRY_WORKER`, it connects back, serves the worker and exits, so `main` never runs
/// in the child. No user code is needed: `cargo test` binaries (whose `main` is libtest's),
/// examples and user binaries all work as they are. The registry is a `linkme` distributed
/// slice, which the linker fills: it is complete before any code runs, including this hook.
///
/// What runs in the child before the hook: other constructor functions of the binary (rare),
/// and nothing of `main`. So state set up by `main` (a logger, a global runtime) does not
/// exist in the child; a worker must build what it needs in its constructor.
///
/// # Who may connect
///
/// On Linux the parent accepts only the child it spawned on the socket: the kernel's record of
/// the connecting process must show that child's pid and the parent's own uid, and the child
/// must then prove a random secret it got in its environment (never in the socket's name,
/// which every local user can see). Any other connection is closed before it is read and
/// logged as a `tracing` warning with its pid and uid; after 8 of them the start fails. The
/// child likewise talks only to its parent. Processes of the same user are trusted.
///
/// ```
/// use concurry::{ProcessWorker, RemoteWorker};
/// use serde::{Deserialize, Serialize};
///
/// struct Doubler;
///
/// #[derive(Serialize, Deserialize)]
/// struct Double(u64);
///
/// impl RemoteWorker for Doubler {
///     const NAME: &'static str = "docs::Doubler";
///     type Args = ();
///     type Request = Double;
///     type Response = u64;
///     type InitError = concurry::wire::Never; // a constructor that cannot fail
///     fn construct((): ()) -> Result<Self, Self::InitError> { Ok(Doubler) }
///     fn dispatch(&mut self, Double(n): Double) -> u64 { 2 * n }
/// }
/// concurry::register_remote!(Doubler);
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let worker = ProcessWorker::<Doubler>::spawn(())?;
/// assert_eq!(worker.call(Double(21)).result()?, 42);
/// assert_ne!(worker.pid(), Some(std::process::id()));
/// worker.stop()?;
/// # Ok(()) }
/// ```
pub trait RemoteWorker: Sized + 'static {
    /// The name the child looks the type up by. Stable across builds of the same source
    /// (`#[worker(remote)]` uses `module_path!()::Type`) and unique in the binary.
    const NAME: &'static str;
    /// The type's schema fingerprint: `#[worker(remote)]` hashes the type's name and its
    /// methods' signatures. Both sides exchange it at hello; a worker built from another
    /// definition is refused with [`WireError::SchemaMismatch`](crate::wire::WireError).
    /// Default 0 (a hand-written impl: bump it when the protocol changes).
    const SCHEMA: u64 = 0;
    /// The constructor's arguments, sent to the child at each (re)start.
    type Args: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// One call: which method, with its arguments.
    type Request: Serialize + DeserializeOwned + Send + 'static;
    /// One call's outcome (a method's own error is part of it).
    type Response: Serialize + DeserializeOwned + Send + 'static;
    /// The constructor's error, a serde type: the parent gets it typed, as
    /// [`Error::Method`](crate::Error::Method) (as in every other mode).
    /// [`wire::Never`](crate::wire::Never) for a constructor that cannot fail.
    type InitError: Serialize + DeserializeOwned + fmt::Display + Send + 'static;

    /// Builds the instance, in the child.
    ///
    /// # Errors
    ///
    /// The constructor's own error.
    fn construct(args: Self::Args) -> Result<Self, Self::InitError>;

    /// Runs one call, in the child. A panic here fails only this call
    /// ([`Error::Panicked`](crate::Error::Panicked)); the child goes on serving.
    fn dispatch(&mut self, request: Self::Request) -> Self::Response;

    /// The fingerprint exchanged at hello: [`SCHEMA`](RemoteWorker::SCHEMA), unless the
    /// type serves what it finds at run time (the task hosts fold in every task's).
    #[doc(hidden)]
    fn schema() -> u64 {
        Self::SCHEMA
    }
}

/// One entry of the registry of remote worker types. Built by
/// [`register_remote!`](crate::register_remote); not a public API.
#[doc(hidden)]
pub struct RemoteEntry {
    pub(crate) name: &'static str,
    /// The type's schema fingerprint, as this build has it.
    pub(crate) schema: fn() -> u64,
    /// Builds an instance from its encoded constructor arguments, ready to serve calls.
    pub(crate) construct: Construct,
}

impl RemoteEntry {
    /// The entry of `W`.
    pub const fn of<W: RemoteWorker>() -> Self {
        RemoteEntry {
            name: W::NAME,
            schema: W::schema,
            construct: construct::<W>,
        }
    }
}

impl fmt::Debug for RemoteEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteEntry")
            .field("name", &self.name)
            .finish()
    }
}

/// The registry: every [`RemoteWorker`] type of the binary, collected by the linker.
#[doc(hidden)]
#[linkme::distributed_slice]
pub static REMOTE_WORKERS: [RemoteEntry];

/// Remote workers of the runtime itself: [`TaskHost`], and the children of `#[task(remote)]`
/// pools. (They cannot go into the linker's registry: `#![forbid(unsafe_code)]` rejects the
/// `link_section` a registration needs when it is expanded in this crate.)
static BUILTIN: [RemoteEntry; 2] = [
    RemoteEntry::of::<super::task::TaskHost>(),
    RemoteEntry::of::<crate::task::TaskWorker>(),
];

/// Every registered remote worker type: the runtime's own, then the binary's.
pub(crate) fn entries() -> impl Iterator<Item = &'static RemoteEntry> {
    BUILTIN.iter().chain(REMOTE_WORKERS.iter())
}

/// The registry entry named `name`.
pub(crate) fn lookup(name: &str) -> Option<&'static RemoteEntry> {
    entries().find(|e| e.name == name)
}

/// Adds a [`RemoteWorker`] type to the registry, so a child process can serve it.
///
/// `#[worker(remote)]` emits this; write it yourself only next to a hand-written
/// [`RemoteWorker`] impl. Any module of the binary will do; it runs no code.
///
/// ```
/// # use concurry::RemoteWorker;
/// # struct Nop;
/// # impl RemoteWorker for Nop {
/// #     const NAME: &'static str = "docs::Nop";
/// #     type Args = (); type Request = (); type Response = (); type InitError = String;
/// #     fn construct((): ()) -> Result<Self, String> { Ok(Nop) }
/// #     fn dispatch(&mut self, (): ()) {}
/// # }
/// concurry::register_remote!(Nop);
/// ```
#[macro_export]
macro_rules! register_remote {
    ($ty:ty) => {
        const _: () = {
            #[$crate::__private::linkme::distributed_slice($crate::__private::REMOTE_WORKERS)]
            #[linkme(crate = $crate::__private::linkme)]
            static ENTRY: $crate::__private::RemoteEntry =
                $crate::__private::RemoteEntry::of::<$ty>();
        };
    };
}

pub(crate) fn check_registered<W: RemoteWorker>() -> Result<(), Error> {
    let found = entries().filter(|e| e.name == W::NAME).count();
    if lookup(W::NAME).is_none() {
        return Err(Error::Config(ConfigError::new(
            "mode",
            "process",
            format!(
                "`{}` is not registered for process mode; mark it `#[worker(remote)]` \
                 (or add `concurry::register_remote!(..)` next to a hand-written `RemoteWorker`)",
                W::NAME
            ),
        )));
    }
    if found > 1 {
        return Err(Error::Config(ConfigError::new(
            "mode",
            "process",
            format!(
                "{found} remote worker types are registered as `{}`; give each a unique `NAME`",
                W::NAME
            ),
        )));
    }
    Ok(())
}
