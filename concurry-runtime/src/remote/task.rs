//! `#[task]` functions in child processes: a registry of [`RemoteTask`]s and [`TaskHost`],
//! the built-in remote worker that runs any of them by name.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::handle::fault_error;
use super::registry::RemoteWorker;
use crate::error::{Error, panic_message};
use crate::wire::{Fault, decode, encode};

/// A free function that can run in a child process: the serde-capable counterpart of a
/// `#[task]` function. `#[task(remote)]` implements it; see [`TaskHost`] for an example.
pub trait RemoteTask: 'static {
    /// The name the child looks the task up by (unique in the binary).
    const NAME: &'static str;
    /// The function's schema fingerprint: `#[task(remote)]` hashes its name and signature.
    /// A task host's fingerprint folds in every registered task's, so a child built from
    /// other definitions is refused at hello. Default 0.
    const SCHEMA: u64 = 0;
    /// The function's arguments, as a tuple.
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// What the function returns.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// Runs the function, in the child.
    fn run(args: Self::Args) -> Self::Output;
}

/// One entry of the task registry. Built by
/// [`register_remote_task!`](crate::register_remote_task); not a public API.
#[doc(hidden)]
pub struct TaskEntry {
    pub(crate) name: &'static str,
    pub(crate) schema: u64,
    pub(crate) run: fn(&[u8]) -> Result<Vec<u8>, Fault>,
    /// Its arguments from JSON, encoded, and its output as JSON (tasks submitted by name
    /// from the `concurry` CLI; `cluster/tasks/json.rs`).
    #[cfg(feature = "cluster")]
    pub(crate) json: crate::cluster::tasks::json::JsonCodec,
}

impl TaskEntry {
    /// The entry of `T`.
    pub const fn of<T: RemoteTask>() -> Self {
        TaskEntry {
            name: T::NAME,
            schema: T::SCHEMA,
            run: run_encoded::<T>,
            #[cfg(feature = "cluster")]
            json: crate::cluster::tasks::json::JsonCodec::of::<T>(),
        }
    }
}

impl fmt::Debug for TaskEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskEntry")
            .field("name", &self.name)
            .finish()
    }
}

/// The registry: every [`RemoteTask`] of the binary, collected by the linker.
#[doc(hidden)]
#[linkme::distributed_slice]
pub static REMOTE_TASKS: [TaskEntry];

fn run_encoded<T: RemoteTask>(args: &[u8]) -> Result<Vec<u8>, Fault> {
    let protocol = |e: crate::wire::WireError| Fault::Protocol {
        message: e.to_string(),
    };
    let args: T::Args = decode(args, "task arguments").map_err(protocol)?;
    let out = catch_unwind(AssertUnwindSafe(|| T::run(args))).map_err(|p| Fault::Panicked {
        message: panic_message(&*p),
    })?;
    encode(&out, "task output").map_err(protocol)
}

/// Adds a [`RemoteTask`] to the registry, so a [`TaskHost`] child can run it.
///
/// `#[task(remote)]` emits this; write it yourself only next to a hand-written impl.
///
/// ```
/// # use concurry::RemoteTask;
/// # struct Nop;
/// # impl RemoteTask for Nop {
/// #     const NAME: &'static str = "docs::register_remote_task::Nop";
/// #     type Args = (); type Output = ();
/// #     fn run((): ()) {}
/// # }
/// concurry::register_remote_task!(Nop);
/// ```
#[macro_export]
macro_rules! register_remote_task {
    ($ty:ty) => {
        const _: () = {
            #[$crate::__private::linkme::distributed_slice($crate::__private::REMOTE_TASKS)]
            #[linkme(crate = $crate::__private::linkme)]
            static ENTRY: $crate::__private::TaskEntry = $crate::__private::TaskEntry::of::<$ty>();
        };
    };
}

/// The built-in remote worker that runs registered [`RemoteTask`]s by name: the child side
/// of `#[task]` functions in process mode.
///
/// ```
/// use concurry::{ProcessWorker, RemoteTask, TaskHost};
///
/// struct Square;
/// impl RemoteTask for Square {
///     const NAME: &'static str = "docs::Square";
///     type Args = (u64,);
///     type Output = u64;
///     fn run((x,): (u64,)) -> u64 { x * x }
/// }
/// concurry::register_remote_task!(Square);
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let host = ProcessWorker::<TaskHost>::spawn(())?;
/// assert_eq!(host.run_task::<Square>((7,)).result()?, 49);
/// host.stop()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TaskHost;

impl RemoteWorker for TaskHost {
    const NAME: &'static str = "concurry::TaskHost";
    type Args = ();
    /// The task's name and its encoded arguments.
    type Request = (String, Vec<u8>);
    /// The task's encoded output, or why there is none.
    type Response = Result<Vec<u8>, Fault>;
    type InitError = crate::wire::Never;

    fn construct((): ()) -> Result<Self, Self::InitError> {
        Ok(TaskHost)
    }

    fn dispatch(&mut self, (name, args): (String, Vec<u8>)) -> Result<Vec<u8>, Fault> {
        run_registered(&name, &args)
    }

    fn schema() -> u64 {
        tasks_schema(Self::NAME)
    }
}

/// The fingerprint of a host of every registered task: its own name and each task's name
/// and fingerprint, in name order (the linker's order may differ between builds).
pub(crate) fn tasks_schema(host: &str) -> u64 {
    let mut tasks: Vec<(&str, u64)> = REMOTE_TASKS.iter().map(|t| (t.name, t.schema)).collect();
    tasks.sort_unstable();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(host.as_bytes());
    for (name, schema) in tasks {
        eat(name.as_bytes());
        eat(&schema.to_le_bytes());
    }
    hash
}

/// Runs the registered task `name` on its encoded arguments (the child side of a task call).
pub(crate) fn run_registered(name: &str, args: &[u8]) -> Result<Vec<u8>, Fault> {
    match REMOTE_TASKS.iter().find(|t| t.name == name) {
        Some(task) => (task.run)(args),
        None => Err(Fault::Protocol {
            message: format!(
                "task `{name}` is not registered in this binary; it needs \
                 `#[task(remote)]` or `concurry::register_remote_task!`"
            ),
        }),
    }
}

/// The outcome of a task call as the parent sees it: the decoded output, or the error its
/// child's reply stands for.
pub(crate) fn task_output<O: DeserializeOwned>(
    response: Result<Vec<u8>, Fault>,
) -> Result<O, Error> {
    match response {
        Ok(bytes) => decode::<O>(&bytes, "task output").map_err(Error::Transport),
        Err(fault) => Err(fault_error(fault)),
    }
}
