//! Length-prefixed framing of [`Envelope`]s over any byte stream.
//!
//! A frame is a little-endian `u32` length followed by that many bytes: the 14-byte envelope
//! header (magic `CNCY`, version, kind, correlation id as little-endian `u64`) and the payload.

use std::io::{self, Read, Write};

use super::call::{CALL_HEADER_MAX, CallHeader};
use super::envelope::{Envelope, Kind, MAGIC, VERSION};
use super::error::WireError;

/// Bytes of the envelope header inside a frame: magic, version, kind, id.
pub const HEADER_LEN: usize = 4 + 1 + 1 + 8;

/// The default largest frame a reader accepts and a writer sends: 16 MiB (a pool's
/// `max_message_size` changes it).
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// Encoding and decoding of single frames held in memory.
///
/// ```
/// use concurry::wire::{Envelope, Frame, Kind};
///
/// let env = Envelope::new(Kind::Reply, 42, b"ok".to_vec());
/// let mut bytes = Vec::new();
/// Frame::encode(&env, &mut bytes);
/// let (back, used) = Frame::decode(&bytes).unwrap();
/// assert_eq!((back, used), (env, bytes.len()));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Frame;

impl Frame {
    /// Appends the frame of `env` to `out`.
    ///
    /// # Panics
    ///
    /// If the payload is larger than 4 GiB minus the header (no channel accepts that).
    pub fn encode(env: &Envelope, out: &mut Vec<u8>) {
        Self::encode_parts(env.kind, env.id, &env.payload, out);
    }

    /// Appends a frame built from its parts to `out`, without building an [`Envelope`].
    ///
    /// # Panics
    ///
    /// As [`encode`](Frame::encode).
    pub fn encode_parts(kind: Kind, id: u64, payload: &[u8], out: &mut Vec<u8>) {
        let len = u32::try_from(HEADER_LEN + payload.len())
            .expect("a frame's payload must be smaller than 4 GiB");
        out.reserve(4 + len as usize);
        out.extend_from_slice(&len.to_le_bytes());
        write_header(kind, id, out);
        out.extend_from_slice(payload);
    }

    /// Decodes the first frame of `bytes`, accepting frames up to [`DEFAULT_MAX_FRAME`];
    /// returns the envelope and how many bytes it used.
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] if `bytes` ends inside the frame; any other variant if the
    /// frame is malformed. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<(Envelope, usize), WireError> {
        Self::decode_with_max(bytes, DEFAULT_MAX_FRAME)
    }

    /// As [`decode`](Frame::decode), with frames limited to `max` bytes (after the prefix).
    ///
    /// # Errors
    ///
    /// As [`decode`](Frame::decode), and [`WireError::TooLarge`] above `max`.
    pub fn decode_with_max(bytes: &[u8], max: usize) -> Result<(Envelope, usize), WireError> {
        let prefix = take(bytes, 0, 4, "length prefix")?;
        let len = check_len(u32::from_le_bytes(array(prefix)), max)?;
        let body = take(bytes, 4, len, "frame body")?;
        let env = decode_body(body)?;
        Ok((env, 4 + len))
    }
}

fn take<'a>(
    bytes: &'a [u8],
    start: usize,
    n: usize,
    what: &'static str,
) -> Result<&'a [u8], WireError> {
    let got = bytes.len().saturating_sub(start);
    if got < n {
        return Err(WireError::Truncated {
            what,
            needed: n,
            got,
        });
    }
    Ok(&bytes[start..start + n])
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(&bytes[..N]);
    a
}

fn check_len(len: u32, max: usize) -> Result<usize, WireError> {
    let len = len as usize;
    if len > max {
        return Err(WireError::TooLarge {
            len: len as u64,
            max,
        });
    }
    if len < HEADER_LEN {
        return Err(WireError::TooShort {
            len,
            min: HEADER_LEN,
        });
    }
    Ok(len)
}

/// [`WireError::TooLarge`] if a frame with a payload of `payload` bytes exceeds `max`.
pub(crate) fn check_size(payload: usize, max: usize) -> Result<(), WireError> {
    let len = HEADER_LEN.saturating_add(payload);
    if len > max {
        return Err(WireError::TooLarge {
            len: len as u64,
            max,
        });
    }
    Ok(())
}

fn write_header(kind: Kind, id: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&id.to_le_bytes());
}

/// Checks the header of a frame body (`len` bytes after the prefix) and splits off the payload.
fn decode_header(header: &[u8]) -> Result<(Kind, u64), WireError> {
    let magic: [u8; 4] = array(&header[..4]);
    if magic != MAGIC {
        return Err(WireError::BadMagic {
            found: magic,
            expected: MAGIC,
        });
    }
    if header[4] != VERSION {
        return Err(WireError::VersionMismatch {
            found: header[4],
            expected: VERSION,
        });
    }
    let kind = Kind::from_byte(header[5])?;
    let id = u64::from_le_bytes(array(&header[6..HEADER_LEN]));
    Ok((kind, id))
}

fn decode_body(body: &[u8]) -> Result<Envelope, WireError> {
    let (kind, id) = decode_header(&body[..HEADER_LEN])?;
    Ok(Envelope::new(kind, id, body[HEADER_LEN..].to_vec()))
}

/// Reads frames from a byte stream (wrap sockets in a [`std::io::BufReader`]).
///
/// ```
/// use concurry::wire::{Envelope, Frame, FrameReader, Kind};
///
/// let mut bytes = Vec::new();
/// Frame::encode(&Envelope::new(Kind::Call, 1, vec![9]), &mut bytes);
/// let mut reader = FrameReader::new(&bytes[..]);
/// assert_eq!(reader.read().unwrap().unwrap().id, 1);
/// assert!(reader.read().unwrap().is_none()); // clean end of stream
/// ```
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    max: usize,
    /// `read_stall_bounded`: whether the socket's read timeout is set now.
    armed: bool,
}

impl<R: Read> FrameReader<R> {
    /// A reader accepting frames up to [`DEFAULT_MAX_FRAME`].
    pub fn new(inner: R) -> Self {
        Self::with_max(inner, DEFAULT_MAX_FRAME)
    }

    /// A reader accepting frames up to `max` bytes (after the prefix).
    pub fn with_max(inner: R, max: usize) -> Self {
        FrameReader {
            inner,
            max,
            armed: false,
        }
    }

    /// Accepts frames up to `max` bytes (after the prefix) from now on.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The underlying stream, mutably.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The underlying stream.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads the next frame; `Ok(None)` if the stream ended cleanly between frames.
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] if the stream ended inside a frame, [`WireError::Io`] if it
    /// failed, any other variant for a malformed frame (after which the stream's framing is
    /// lost: drop the channel).
    pub fn read(&mut self) -> Result<Option<Envelope>, WireError> {
        let mut prefix = [0u8; 4];
        let got = read_full(&mut self.inner, &mut prefix)?;
        if got == 0 {
            return Ok(None);
        }
        if got < 4 {
            return Err(WireError::Truncated {
                what: "length prefix",
                needed: 4,
                got,
            });
        }
        let len = check_len(u32::from_le_bytes(prefix), self.max)?;
        let mut header = [0u8; HEADER_LEN];
        let got = read_full(&mut self.inner, &mut header)?;
        if got < HEADER_LEN {
            return Err(WireError::Truncated {
                what: "header",
                needed: HEADER_LEN,
                got,
            });
        }
        let (kind, id) = decode_header(&header)?;
        let mut payload = vec![0u8; len - HEADER_LEN];
        let got = read_full(&mut self.inner, &mut payload)?;
        if got < payload.len() {
            return Err(WireError::Truncated {
                what: "payload",
                needed: payload.len(),
                got,
            });
        }
        Ok(Some(Envelope::new(kind, id, payload)))
    }
}

#[cfg(unix)]
impl FrameReader<io::BufReader<std::os::unix::net::UnixStream>> {
    /// Reads the next frame like [`read`](FrameReader::read), waiting as long as it takes for
    /// a frame to begin but at most `stall` for each read of the rest of it, so a peer that
    /// sends a truncated frame and stays silent cannot hang the reader.
    ///
    /// ```
    /// use std::io::{BufReader, Write};
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use concurry::wire::{FrameReader, WireError};
    ///
    /// let (mut tx, rx) = UnixStream::pair().unwrap();
    /// tx.write_all(b"\x20\x00\x00\x00CNCY").unwrap(); // 32 bytes announced, 4 sent
    /// let mut reader = FrameReader::new(BufReader::new(rx));
    /// let err = reader.read_stall_bounded(Duration::from_millis(10)).unwrap_err();
    /// assert!(matches!(err, WireError::Stalled { .. }), "{err}");
    /// ```
    ///
    /// # Errors
    ///
    /// As [`read`](FrameReader::read), and [`WireError::Stalled`].
    pub fn read_stall_bounded(
        &mut self,
        stall: std::time::Duration,
    ) -> Result<Option<Envelope>, WireError> {
        use std::io::BufRead;
        if self.inner.buffer().is_empty() {
            if self.armed {
                self.inner.get_ref().set_read_timeout(None)?;
                self.armed = false;
            }
            loop {
                match self.inner.fill_buf() {
                    Ok([]) => return Ok(None),
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(WireError::Io(e)),
                }
            }
        }
        // A frame that is already whole in the buffer needs no timeout (which costs two
        // system calls per frame on a round trip).
        if !self.armed && !self.whole_frame_buffered() {
            self.inner.get_ref().set_read_timeout(Some(stall))?;
            self.armed = true;
        }
        match self.read() {
            Err(WireError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(WireError::Stalled { timeout: stall })
            }
            other => other,
        }
    }
}

impl<R: Read> FrameReader<io::BufReader<R>> {
    /// True if the next frame's length prefix and every byte it announces are buffered.
    fn whole_frame_buffered(&self) -> bool {
        let buffered = self.inner.buffer();
        buffered.get(..4).is_some_and(|prefix| {
            let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
            usize::try_from(len).is_ok_and(|len| buffered.len() - 4 >= len)
        })
    }
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, WireError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WireError::Io(e)),
        }
    }
    Ok(got)
}

/// Writes frames to a byte stream, buffering them until [`flush`](FrameWriter::flush).
///
/// ```
/// use concurry::wire::{FrameReader, FrameWriter, Kind};
///
/// let mut writer = FrameWriter::new(Vec::new());
/// writer.write(Kind::Call, 3, b"abc").unwrap();
/// writer.flush().unwrap();
/// let bytes = writer.into_inner();
/// let env = FrameReader::new(&bytes[..]).read().unwrap().unwrap();
/// assert_eq!(env.payload, b"abc");
/// ```
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    buf: Vec<u8>,
    max: usize,
}

impl<W: Write> FrameWriter<W> {
    /// A writer onto `inner`.
    pub fn new(inner: W) -> Self {
        FrameWriter {
            inner,
            buf: Vec::with_capacity(8 << 10),
            max: DEFAULT_MAX_FRAME,
        }
    }

    /// Refuses frames above `max` bytes (after the prefix) from now on (default
    /// [`DEFAULT_MAX_FRAME`]); give it the peer reader's maximum.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The underlying stream (unflushed frames are dropped).
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Queues one frame; it is sent by [`flush`](FrameWriter::flush), or earlier once the
    /// buffer holds 64 KiB.
    ///
    /// # Errors
    ///
    /// [`WireError::TooLarge`] (nothing is queued) if the frame would exceed the writer's
    /// maximum (see [`set_max`](FrameWriter::set_max)), which the reader would refuse;
    /// [`WireError::Io`] if an early flush failed.
    pub fn write(&mut self, kind: Kind, id: u64, payload: &[u8]) -> Result<(), WireError> {
        check_size(payload.len(), self.max)?;
        Frame::encode_parts(kind, id, payload, &mut self.buf);
        if self.buf.len() >= 64 << 10 {
            self.flush()?;
        }
        Ok(())
    }

    /// Queues one `Call` frame: its `head`, then the request's bytes (see [`CallHeader`]).
    ///
    /// # Errors
    ///
    /// As [`write`](FrameWriter::write).
    pub fn write_call(
        &mut self,
        id: u64,
        head: &CallHeader,
        request: &[u8],
    ) -> Result<(), WireError> {
        let mut scratch = [0u8; CALL_HEADER_MAX];
        let head = postcard::to_slice(head, &mut scratch).map_err(|e| WireError::Encode {
            what: "call header",
            message: e.to_string(),
        })?;
        check_size(head.len() + request.len(), self.max)?;
        let len = u32::try_from(HEADER_LEN + head.len() + request.len())
            .expect("a frame's payload must be smaller than 4 GiB");
        self.buf.reserve(4 + len as usize);
        self.buf.extend_from_slice(&len.to_le_bytes());
        write_header(Kind::Call, id, &mut self.buf);
        self.buf.extend_from_slice(head);
        self.buf.extend_from_slice(request);
        if self.buf.len() >= 64 << 10 {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends every queued frame.
    ///
    /// # Errors
    ///
    /// [`WireError::Io`] if the stream failed.
    pub fn flush(&mut self) -> Result<(), WireError> {
        if !self.buf.is_empty() {
            let r = self.inner.write_all(&self.buf);
            self.buf.clear();
            r?;
        }
        self.inner.flush()?;
        Ok(())
    }

    /// True if frames are queued but not sent.
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }
}
