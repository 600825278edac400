//! The wire layer: how concurry's processes talk (process mode today, cluster mode later).
//!
//! - [`Envelope`]: one message, a [`Kind`] plus a correlation id plus payload bytes.
//! - [`Frame`], [`FrameReader`], [`FrameWriter`]: length-prefixed frames carrying envelopes
//!   (magic `CNCY`, a protocol [`VERSION`], a maximum frame size) over any byte stream.
//! - [`encode`], [`decode`]: payloads are serde types in postcard's compact format.
//! - [`CallHeader`]: a call's deadline, attempt and trace id, ahead of its request.
//! - [`Hello`], [`Fault`]: the payloads of control messages (limit messages are serde types
//!   of the limit layer).
//! - [`WireError`]: what was wrong with the bytes: never a panic, never a hang.
//!
//! # Sending bytes
//!
//! serde sees a plain `Vec<u8>` (or `&[u8]`) as a sequence, which the encoder writes one
//! element at a time: fine for a few KiB, slow for megabytes (most of all in a debug build).
//! Mark byte buffers as bytes and they are copied in one go; the
//! [`serde_bytes`](https://docs.rs/serde_bytes) crate does it, as a field attribute or as the
//! `ByteBuf` type (for a `#[worker(remote)]` method's argument or return type):
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Upload {
//!     name: String,
//!     #[serde(with = "serde_bytes")]
//!     data: Vec<u8>,
//! }
//!
//! let up = Upload { name: "a".into(), data: vec![7; 1 << 20] };
//! let bytes = concurry::wire::encode(&up, "upload").unwrap();
//! // The name (length, `a`), the data's length as a 3-byte varint, then the data as it is.
//! assert_eq!(bytes.len(), 2 + 3 + (1 << 20));
//! let back: Upload = concurry::wire::decode(&bytes, "upload").unwrap();
//! assert_eq!(back.data, up.data);
//!
//! let buf = serde_bytes::ByteBuf::from(vec![1, 2, 3]);
//! let back: serde_bytes::ByteBuf = concurry::wire::decode(&concurry::wire::encode(&buf, "b").unwrap(), "b").unwrap();
//! assert_eq!(back.into_vec(), [1, 2, 3]);
//! ```
//!
//! A call's arguments (and its result) must fit the pool's `max_message_size` (16 MiB
//! unless raised); arguments above 64 KiB are encoded off the caller's thread, so submitting
//! never waits for them.
//!
//! Each worker type that runs out of process has its own request and response enums (the
//! `Request` and `Response` of [`RemoteWorker`](crate::RemoteWorker)); many calls are in flight
//! on one channel at once, and each reply carries its call's id.
//!
//! ```
//! use concurry::wire::{FrameReader, FrameWriter, Kind, decode, encode};
//!
//! let mut w = FrameWriter::new(Vec::new());
//! for id in 1..=3u64 {
//!     w.write(Kind::Call, id, &encode(&format!("call {id}"), "request").unwrap()).unwrap();
//! }
//! w.flush().unwrap();
//! let bytes = w.into_inner();
//! let mut r = FrameReader::new(&bytes[..]);
//! while let Some(env) = r.read().unwrap() {
//!     let text: String = decode(&env.payload, "request").unwrap();
//!     assert_eq!(text, format!("call {}", env.id));
//! }
//! ```

mod call;
mod codec;
mod envelope;
mod error;
mod frame;
mod message;

pub use call::{CALL_HEADER_MAX, CallHeader};
pub(crate) use codec::encode_capped;
pub use codec::{decode, encode, encode_into};
pub use envelope::{Envelope, Kind, MAGIC, VERSION};
pub use error::WireError;
pub(crate) use frame::check_size;
pub use frame::{DEFAULT_MAX_FRAME, Frame, FrameReader, FrameWriter, HEADER_LEN};
pub use message::{Fault, Hello, Never};
