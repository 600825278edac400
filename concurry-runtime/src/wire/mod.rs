//! The wire layer: how concurry's processes talk (process mode today, cluster mode later).
//!
//! - [`Envelope`]: one message, a [`Kind`] plus a correlation id plus payload bytes.
//! - [`Frame`], [`FrameReader`], [`FrameWriter`]: length-prefixed frames carrying envelopes
//!   (magic `CNCY`, a protocol [`VERSION`], a maximum frame size) over any byte stream.
//! - [`encode`], [`decode`]: payloads are serde types in postcard's compact format.
//! - [`Hello`], [`Fault`], [`LimitRequest`], [`LimitFault`]: the payloads of control messages.
//! - [`WireError`]: what was wrong with the bytes: never a panic, never a hang.
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

mod codec;
mod envelope;
mod error;
mod frame;
mod message;

pub use codec::{decode, encode, encode_into};
pub use envelope::{Envelope, Kind, MAGIC, VERSION};
pub use error::WireError;
pub(crate) use frame::check_size;
pub use frame::{DEFAULT_MAX_FRAME, Frame, FrameReader, FrameWriter, HEADER_LEN};
pub use message::{Fault, Hello, LimitFault, LimitRequest, Never};
