//! Payload encoding: serde types as [postcard](https://docs.rs/postcard) bytes.
//!
//! Why postcard (and not bincode 2): its wire format is specified and frozen for 1.x (a stable
//! format matters once cluster nodes of different builds talk), integers are varints (small
//! ids and lengths cost one byte), it is fast and allocation-light, and it needs nothing but
//! serde. The envelope carries our own protocol version, so a change of encoding is a version
//! bump, refused cleanly by older peers.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::WireError;

/// Encodes `value` as a payload; `what` names it in the error.
///
/// ```
/// let bytes = concurry::wire::encode(&(7u32, "hi".to_string()), "args").unwrap();
/// let back: (u32, String) = concurry::wire::decode(&bytes, "args").unwrap();
/// assert_eq!(back, (7, "hi".to_string()));
/// ```
///
/// # Errors
///
/// [`WireError::Encode`] if the type's `Serialize` impl fails (e.g. a map of unknown length
/// from a custom impl).
pub fn encode<T: Serialize + ?Sized>(value: &T, what: &'static str) -> Result<Vec<u8>, WireError> {
    postcard::to_allocvec(value).map_err(|e| WireError::Encode {
        what,
        message: e.to_string(),
    })
}

/// Appends the encoding of `value` to `out` (reusing its allocation).
///
/// ```
/// let mut out = vec![0xAA];
/// concurry::wire::encode_into(&5u8, "n", &mut out).unwrap();
/// assert_eq!(out, [0xAA, 5]);
/// ```
///
/// # Errors
///
/// As [`encode`].
pub fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    what: &'static str,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let buf = std::mem::take(out);
    match postcard::to_extend(value, buf) {
        Ok(buf) => {
            *out = buf;
            Ok(())
        }
        Err(e) => Err(WireError::Encode {
            what,
            message: e.to_string(),
        }),
    }
}

/// Decodes a payload of type `T`; `what` names it in the error. Bytes left over after the
/// value are an error too (they mean the peer encoded another type).
///
/// ```
/// use concurry::wire::{WireError, decode};
/// assert!(matches!(decode::<String>(&[9, b'a'], "name"), Err(WireError::Payload { .. })));
/// ```
///
/// # Errors
///
/// [`WireError::Payload`], naming `what`, if `bytes` is not exactly one `T`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, WireError> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(WireError::Payload {
            what,
            message: format!(
                "{} byte{} left over after the value",
                rest.len(),
                if rest.len() == 1 { "" } else { "s" }
            ),
        }),
        Err(e) => Err(WireError::Payload {
            what,
            message: e.to_string(),
        }),
    }
}

/// A postcard output that refuses to grow past `cap` bytes.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
}

impl postcard::ser_flavors::Flavor for Capped {
    type Output = Vec<u8>;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if self.buf.len() + data.len() > self.cap {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.buf)
    }
}

/// As [`encode`], if the encoding takes at most `cap` bytes; `None` (after at most `cap`
/// bytes' worth of work) if it would take more.
pub(crate) fn encode_capped<T: Serialize + ?Sized>(
    value: &T,
    what: &'static str,
    cap: usize,
) -> Option<Result<Vec<u8>, WireError>> {
    let out = Capped {
        buf: Vec::new(),
        cap,
    };
    match postcard::serialize_with_flavor(value, out) {
        Ok(bytes) => Some(Ok(bytes)),
        Err(postcard::Error::SerializeBufferFull) => None,
        Err(e) => Some(Err(WireError::Encode {
            what,
            message: e.to_string(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_capped_gives_up_past_its_cap_only() {
        let small = vec![7u8; 100];
        assert_eq!(
            encode_capped(&small, "v", 1000).unwrap().unwrap(),
            encode(&small, "v").unwrap()
        );
        assert!(encode_capped(&vec![7u8; 2000], "v", 1000).is_none());
    }
}
