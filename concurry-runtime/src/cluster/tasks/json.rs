//! Tasks by name with JSON arguments, for callers without the task's Rust types (the
//! `concurry` CLI): [`TaskQueue::submit_json`] and [`TaskQueue::result_json`].
//!
//! The types live only in the nodes' binary, so a node does the conversions: each node of a
//! binary with remote tasks answers requests on `cc.<ns>.tasks.json` (one node of a queue
//! group per request): "encode these JSON arguments for task `T`" (decoded into `T`'s own
//! serde argument types, then encoded as a submit from Rust would; a type error names the
//! argument and the expected type; an unknown name lists the known ones) and "render this
//! output of `T` as JSON". The task itself is then submitted and run as any other, with the
//! node's schema fingerprint. A JSON submit also records the task's name (key `<id>.task` of
//! the status bucket), so its result can later be rendered by id alone.
//!
//! Arguments are positional: a JSON array with one element per parameter (`[2, "x"]`); a
//! task of one parameter also takes the bare value (`2`), one of none `[]` or `null`.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::handle::wait;
use super::inspect::NAME_SUFFIX;
use super::record::{Outcome, Stored};
use super::status::stored;
use super::submit::{Extra, Submit, TaskQueue, record, send};
use super::{check_id, server_error};
use crate::cluster::{Cluster, run};
use crate::error::{ConfigError, Error};
use crate::remote::RemoteTask;
use crate::remote::task::REMOTE_TASKS;

/// How long a node may take to answer a conversion.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// The queue group of the nodes answering conversions: one of them answers each request.
const GROUP: &str = "concurry-tasks-json";

const MAGIC: &[u8; 3] = b"CCJ";
const VERSION: u8 = 1;

/// A task's conversions between JSON and its serde types, kept in its registry entry.
#[derive(Clone, Copy)]
pub(crate) struct JsonCodec {
    /// JSON arguments (text) → the encoded argument tuple.
    args: fn(&str) -> Result<Vec<u8>, String>,
    /// The encoded output → JSON text.
    output: fn(&[u8]) -> Result<String, String>,
    /// The argument tuple's type, readable (`(u64, String)`).
    signature: fn() -> String,
}

impl JsonCodec {
    pub(crate) const fn of<T: RemoteTask>() -> JsonCodec {
        JsonCodec {
            args: args_of::<T>,
            output: output_of::<T>,
            signature: signature_of::<T::Args>,
        }
    }
}

fn signature_of<A>() -> String {
    readable(std::any::type_name::<A>())
}

/// A type name without the standard library's module paths.
fn readable(name: &str) -> String {
    let mut s = name.to_string();
    for prefix in [
        "alloc::string::",
        "alloc::vec::",
        "alloc::boxed::",
        "alloc::collections::btree::map::",
        "std::collections::hash::map::",
        "core::option::",
        "core::result::",
    ] {
        s = s.replace(prefix, "");
    }
    s
}

fn args_of<T: RemoteTask>(text: &str) -> Result<Vec<u8>, String> {
    let args: T::Args = args_from_json(text)?;
    crate::wire::encode(&args, "task arguments").map_err(|e| e.to_string())
}

fn output_of<T: RemoteTask>(bytes: &[u8]) -> Result<String, String> {
    let out: T::Output = crate::wire::decode(bytes, "task output").map_err(|e| e.to_string())?;
    serde_json::to_string(&out).map_err(|e| format!("the output has no JSON form ({e})"))
}

/// Decodes positional JSON arguments as the tuple `A`; on a type error, names the argument
/// (its position and value) and what was expected.
pub(crate) fn args_from_json<A: DeserializeOwned>(text: &str) -> Result<A, String> {
    use serde_json::Value;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "the arguments are not JSON ({e}); write them as a JSON array with one element per \
             argument, e.g. '[2, \"x\"]'"
        )
    })?;
    let items = match &value {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    };
    if let Ok(a) = serde_json::from_value::<A>(Value::Array(items.clone())) {
        return Ok(a);
    }
    if items.is_empty()
        && let Ok(a) = serde_json::from_value::<A>(Value::Null)
    {
        return Ok(a);
    }
    if value.is_array()
        && let Ok(a) = serde_json::from_value::<A>(Value::Array(vec![value.clone()]))
    {
        return Ok(a);
    }
    // Parsed again from text laid out here, so the error's column says which element failed.
    let mut laid = String::from("[");
    let mut spans = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            laid.push_str(", ");
        }
        let start = laid.len();
        laid.push_str(&v.to_string());
        spans.push(start..laid.len());
    }
    laid.push(']');
    let e = match serde_json::from_str::<A>(&laid) {
        Ok(a) => return Ok(a),
        Err(e) => e,
    };
    let message = e.to_string();
    let message = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(m, _)| m)
        .to_string();
    let at = e.column().saturating_sub(1);
    match spans.iter().position(|r| r.contains(&at)) {
        Some(i) => Err(format!(
            "argument {} ({}): {message}",
            i + 1,
            truncate(&items[i].to_string())
        )),
        None => Err(message),
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}...", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    /// JSON arguments for `task`, to be encoded.
    Encode { task: String, args: String },
    /// An encoded output of `task`, to be rendered as JSON.
    Render { task: String, output: Vec<u8> },
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Encoded {
        schema: u64,
        args: Vec<u8>,
    },
    Rendered {
        json: String,
    },
    /// No task of that name here; the names there are.
    UnknownTask {
        known: Vec<String>,
    },
    /// The arguments do not fit the task's types.
    BadArguments {
        signature: String,
        message: String,
    },
    /// The output could not be rendered.
    BadOutput {
        message: String,
    },
    /// The request could not be read.
    Malformed {
        message: String,
    },
}

fn encode_msg<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    postcard::to_io(msg, &mut out).expect("a JSON-task message encodes");
    out
}

fn decode_msg<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes {
        [a, b, c, v, rest @ ..] if [*a, *b, *c] == *MAGIC => {
            if *v != VERSION {
                return Err(format!(
                    "JSON-task message version {v}, this build speaks {VERSION}; run one version \
                     of concurry across nodes and the CLI"
                ));
            }
            postcard::from_bytes(rest).map_err(|e| format!("malformed JSON-task message ({e})"))
        }
        _ => Err("not a concurry JSON-task message".to_string()),
    }
}

fn subject(namespace: &str) -> String {
    format!("cc.{namespace}.tasks.json")
}

/// What a node answers.
fn answer(request: &[u8]) -> Reply {
    let request = match decode_msg::<Request>(request) {
        Ok(r) => r,
        Err(message) => return Reply::Malformed { message },
    };
    let name = match &request {
        Request::Encode { task, .. } | Request::Render { task, .. } => task,
    };
    let Some(entry) = REMOTE_TASKS.iter().find(|t| t.name == name) else {
        let mut known: Vec<String> = REMOTE_TASKS.iter().map(|t| t.name.to_string()).collect();
        known.sort();
        known.dedup();
        return Reply::UnknownTask { known };
    };
    match request {
        Request::Encode { args, .. } => match (entry.json.args)(&args) {
            Ok(args) => Reply::Encoded {
                schema: entry.schema,
                args,
            },
            Err(message) => Reply::BadArguments {
                signature: (entry.json.signature)(),
                message,
            },
        },
        Request::Render { output, .. } => match (entry.json.output)(&output) {
            Ok(json) => Reply::Rendered { json },
            Err(message) => Reply::BadOutput { message },
        },
    }
}

/// Starts answering conversions on this node (when its binary has remote tasks).
pub(crate) fn serve(cluster: &Cluster) -> Result<Option<tokio::task::AbortHandle>, Error> {
    if REMOTE_TASKS.is_empty() {
        return Ok(None);
    }
    let client = cluster.client().clone();
    let subject = subject(cluster.namespace());
    let url = cluster.url().to_string();
    run(async move {
        let mut requests = client
            .queue_subscribe(subject.clone(), GROUP.to_string())
            .await
            .map_err(|e| server_error(&format!("subscribe to `{subject}`"), &url, e))?;
        let task = crate::runtime::runtime().spawn(async move {
            use futures_util::StreamExt;
            while let Some(msg) = requests.next().await {
                let Some(to) = msg.reply else { continue };
                // Decoding large arguments is CPU work: off the runtime's threads.
                let payload = msg.payload;
                let reply = tokio::task::spawn_blocking(move || answer(&payload))
                    .await
                    .unwrap_or_else(|e| Reply::Malformed {
                        message: format!("the conversion panicked ({e})"),
                    });
                let _ = client.publish(to, encode_msg(&reply).into()).await;
            }
        });
        Ok(Some(task.abort_handle()))
    })
}

/// Asks a node of the namespace to convert; the errors name the task and say the fix.
async fn ask(cluster: &Cluster, task: &str, request: Request) -> Result<Reply, Error> {
    let client = cluster.client().clone();
    let subject = subject(cluster.namespace());
    let no_node = || {
        Error::from(ConfigError::new(
            "nodes",
            format!("namespace `{}`", cluster.namespace()),
            format!(
                "no node answers for task `{task}`: start a node (`Node::serve`) of the binary \
                 that defines it"
            ),
        ))
    };
    let reply = tokio::time::timeout(
        ASK_TIMEOUT,
        client.request(subject, encode_msg(&request).into()),
    )
    .await
    .map_err(|_| no_node())?
    .map_err(|e| match e.kind() {
        async_nats::client::RequestErrorKind::NoResponders
        | async_nats::client::RequestErrorKind::TimedOut => no_node(),
        _ => server_error("ask a node to convert JSON", cluster.url(), e),
    })?;
    let reply: Reply = decode_msg(&reply.payload)
        .map_err(|m| Error::Transport(crate::wire::WireError::Peer { message: m }))?;
    match reply {
        Reply::UnknownTask { known } => Err(ConfigError::new(
            "task",
            format!("task `{task}`"),
            format!(
                "no node has a task of that name; they have: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        )
        .into()),
        Reply::BadArguments { signature, message } => Err(ConfigError::new(
            "task arguments",
            format!("task `{task}`"),
            format!("{message}; it takes {signature}"),
        )
        .into()),
        Reply::BadOutput { message } | Reply::Malformed { message } => {
            Err(Error::Transport(crate::wire::WireError::Peer { message }))
        }
        ok => Ok(ok),
    }
}

impl TaskQueue {
    /// Submits the task named `task` with JSON arguments (`args`: a JSON array, one element
    /// per parameter), for callers without its Rust types: a node of the namespace decodes
    /// them into the task's own argument types first, so a type error comes back here, before
    /// anything is stored. Returns the task's id once it is stored (as
    /// [`submit_with`](TaskQueue::submit_with)); [`result_json`](TaskQueue::result_json)
    /// gives its output as JSON.
    ///
    /// ```no_run
    /// use concurry::cluster::{Cluster, Submit};
    ///
    /// # fn main() -> Result<(), concurry::Error> {
    /// let q = Cluster::connect("nats://127.0.0.1:4222")?.tasks()?;
    /// let id = q.submit_json("app::resize", r#"["cat.png", 640]"#, Submit::new())?;
    /// let out = q.result_json(&id, None, Some(std::time::Duration::from_secs(60)))?;
    /// println!("{out:?}"); // Some("...JSON...")
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] with option `task` for a name no node knows (the message lists the
    /// known ones), `task arguments` for arguments that do not fit (naming the argument and
    /// the expected type), `nodes` when no node answers, and as
    /// [`submit_with`](TaskQueue::submit_with).
    pub fn submit_json(&self, task: &str, args: &str, submit: Submit) -> Result<String, Error> {
        let inner = self.inner.clone();
        let (task, args) = (task.to_string(), args.to_string());
        let cluster = inner.cluster.clone();
        let name = task.clone();
        let reply = run(async move {
            ask(
                &cluster,
                &name,
                Request::Encode {
                    task: name.clone(),
                    args,
                },
            )
            .await
        })?;
        let Reply::Encoded { schema, args } = reply else {
            return Err(Error::Transport(crate::wire::WireError::Peer {
                message: format!("a node answered an encode request with {reply:?}"),
            }));
        };
        let prepared = self.prepare_encoded(&task, schema, args, submit)?;
        let id = prepared.id.clone();
        run(async move {
            let store = &inner.store;
            record(store, &prepared.id, prepared.not_before, false).await?;
            store
                .status
                .put(
                    format!("{}{NAME_SUFFIX}", prepared.id),
                    task.clone().into_bytes().into(),
                )
                .await
                .map_err(|e| server_error("record the task's name", &store.url, e))?;
            send(
                store,
                &task,
                &prepared.id,
                &prepared.id,
                &prepared.level,
                prepared.payload,
                Extra {
                    not_before: prepared.not_before,
                    reply: None,
                },
            )
            .await?
            .await
            .map(|_| ())
            .map_err(|e| server_error("store the task", &store.url, e))
        })?;
        Ok(id)
    }

    /// The output of the task `id` as JSON text, rendered by a node: `None` while it has no
    /// result (after waiting up to `wait`, if given). `task` names the task; without it, the
    /// name a JSON submit recorded is used.
    ///
    /// # Errors
    ///
    /// The task's own failure as with a typed handle ([`Error::Panicked`],
    /// [`Error::Cancelled`], [`Error::RetriesExhausted`], ...); [`Error::Config`] for an
    /// invalid id, a task whose name is neither given nor recorded (submitted from Rust), and
    /// as [`submit_json`](TaskQueue::submit_json).
    pub fn result_json(
        &self,
        id: &str,
        task: Option<&str>,
        wait_for: Option<Duration>,
    ) -> Result<Option<String>, Error> {
        check_id(id)?;
        let inner = self.inner.clone();
        let id = id.to_string();
        let task = task.map(str::to_string);
        run(async move {
            let store = &inner.store;
            let found: Option<Stored> = match wait_for {
                Some(d) => match tokio::time::timeout(d, wait(store, &id)).await {
                    Ok(s) => Some(s?),
                    Err(_) => None,
                },
                None => stored(store, &id).await?,
            };
            let Some(found) = found else {
                return Ok(None);
            };
            let bytes = match found.outcome {
                Outcome::Ok(bytes) => bytes,
                Outcome::Failed(f) => return Err(f.into_error("task")),
            };
            let task = match task {
                Some(t) => t,
                None => match store
                    .status
                    .get(format!("{id}{NAME_SUFFIX}"))
                    .await
                    .map_err(|e| server_error("read the task's name", &store.url, e))?
                {
                    Some(name) => String::from_utf8_lossy(&name).into_owned(),
                    None => {
                        return Err(ConfigError::new(
                            "task",
                            format!("task id {id:?}"),
                            "its name is not recorded (it was submitted from Rust); name the \
                             task to have a node render its output (`--task NAME`)",
                        )
                        .into());
                    }
                },
            };
            match ask(
                &inner.cluster,
                &task,
                Request::Render {
                    task: task.clone(),
                    output: bytes,
                },
            )
            .await?
            {
                Reply::Rendered { json } => Ok(Some(json)),
                other => Err(Error::Transport(crate::wire::WireError::Peer {
                    message: format!("a node answered a render request with {other:?}"),
                })),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_arguments_decode_into_the_tuple() {
        let (a, b): (u64, String) = args_from_json(r#"[2, "x"]"#).unwrap();
        assert_eq!((a, b.as_str()), (2, "x"));
        let (v,): (Vec<u32>,) = args_from_json("[1, 2, 3]").unwrap();
        assert_eq!(v, [1, 2, 3]);
        let (n,): (u8,) = args_from_json("7").unwrap();
        assert_eq!(n, 7);
        let (): () = args_from_json("[]").unwrap();
    }

    #[test]
    fn a_type_error_names_the_argument_and_the_expected_type() {
        let e = args_from_json::<(u64, u64)>(r#"[1, "two"]"#).unwrap_err();
        assert_eq!(
            e,
            "argument 2 (\"two\"): invalid type: string \"two\", expected u64"
        );
        let e = args_from_json::<(u64, String)>(r#"["x", "y"]"#).unwrap_err();
        assert!(e.starts_with("argument 1 (\"x\")"), "{e}");
        let e = args_from_json::<(u64, u64)>("[1]").unwrap_err();
        assert!(e.contains("invalid length 1"), "{e}");
        let e = args_from_json::<(u64,)>("[1,").unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
    }

    #[test]
    fn signatures_read_without_std_paths() {
        assert_eq!(
            signature_of::<(u64, String, Option<Vec<u8>>)>(),
            "(u64, String, Option<Vec<u8>>)"
        );
    }

    #[test]
    fn garbage_requests_are_answered_typed() {
        assert!(matches!(answer(b"nope"), Reply::Malformed { .. }));
        let unknown = encode_msg(&Request::Encode {
            task: "no::such".into(),
            args: "[]".into(),
        });
        assert!(matches!(answer(&unknown), Reply::UnknownTask { .. }));
    }
}
