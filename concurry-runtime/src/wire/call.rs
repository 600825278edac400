//! [`CallHeader`]: what travels with each call besides its request, so the far side (a
//! child today, a node on another machine later) knows the call's deadline, which attempt
//! it is and the trace it belongs to.

use serde::{Deserialize, Serialize};

use super::error::WireError;

/// The largest encoded [`CallHeader`]: a `Call`'s payload may be at most this much larger
/// than its request.
pub const CALL_HEADER_MAX: usize = 32;

/// The head of every `Call` payload, followed by the request's bytes.
///
/// The deadline travels as the time left when the call was sent (`budget_us`), so the two
/// sides' clocks need not agree.
///
/// ```
/// use concurry::wire::CallHeader;
///
/// let head = CallHeader { budget_us: Some(250_000), attempt: 2, trace: 0x5eed };
/// let mut payload = head.encode();
/// payload.extend_from_slice(b"request");
/// let (back, request) = CallHeader::split(&payload).unwrap();
/// assert_eq!((back, request), (head, &b"request"[..]));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CallHeader {
    /// Microseconds left until the call's deadline when it was sent (`None`: no deadline).
    pub budget_us: Option<u64>,
    /// Which attempt of the call this is (1 for the first; a retry resends the request).
    pub attempt: u32,
    /// The call's trace id: the same for every attempt of one call.
    pub trace: u64,
}

impl CallHeader {
    /// The header's bytes (at most [`CALL_HEADER_MAX`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CALL_HEADER_MAX);
        self.encode_into(&mut out);
        out
    }

    /// Appends the header's bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // A struct of integers always encodes.
        if let Ok(bytes) = postcard::to_slice(self, &mut [0u8; CALL_HEADER_MAX]) {
            out.extend_from_slice(bytes);
        }
    }

    /// Splits a `Call` payload into its header and the request's bytes.
    ///
    /// # Errors
    ///
    /// [`WireError::Payload`] if the payload does not start with a header.
    pub fn split(payload: &[u8]) -> Result<(CallHeader, &[u8]), WireError> {
        postcard::take_from_bytes(payload).map_err(|e| WireError::Payload {
            what: "call header",
            message: e.to_string(),
        })
    }
}
