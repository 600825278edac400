//! The wire layer: round trips, and garbage that never panics or hangs the decoder.

use concurry::wire::{
    DEFAULT_MAX_FRAME, Envelope, Fault, Frame, FrameReader, FrameWriter, HEADER_LEN, Hello, Kind,
    MAGIC, VERSION, WireError, decode, encode,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

fn kind() -> impl Strategy<Value = Kind> {
    proptest::sample::select(Kind::ALL.to_vec())
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        kind(),
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(k, id, p)| Envelope::new(k, id, p))
}

fn framed(env: &Envelope) -> Vec<u8> {
    let mut out = Vec::new();
    Frame::encode(env, &mut out);
    out
}

/// Reads every frame of `bytes`; stops at the first error. Bounded: each frame consumes at
/// least a header's worth of bytes.
fn read_all(bytes: &[u8]) -> (Vec<Envelope>, Option<WireError>) {
    let mut r = FrameReader::new(bytes);
    let mut out = Vec::new();
    for _ in 0..=bytes.len() / HEADER_LEN + 1 {
        match r.read() {
            Ok(Some(env)) => out.push(env),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
    panic!("the reader produced more frames than the bytes can hold");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Request {
    Ping,
    Add(i64, i64),
    Echo {
        text: String,
        tags: Vec<Option<u16>>,
    },
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::Ping),
        (any::<i64>(), any::<i64>()).prop_map(|(a, b)| Request::Add(a, b)),
        (".*", proptest::collection::vec(any::<Option<u16>>(), 0..5))
            .prop_map(|(text, tags)| Request::Echo { text, tags }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn frames_round_trip(envs in proptest::collection::vec(envelope(), 0..8)) {
        let mut bytes = Vec::new();
        for e in &envs {
            Frame::encode(e, &mut bytes);
        }
        let (back, err) = read_all(&bytes);
        prop_assert!(err.is_none(), "{err:?}");
        prop_assert_eq!(&back, &envs);
        // The in-memory decoder agrees with the stream reader.
        let mut rest = &bytes[..];
        for e in &envs {
            let (d, used) = Frame::decode(rest).unwrap();
            prop_assert_eq!(&d, e);
            rest = &rest[used..];
        }
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn writer_and_reader_agree(envs in proptest::collection::vec(envelope(), 0..8)) {
        let mut w = FrameWriter::new(Vec::new());
        for e in &envs {
            w.write(e.kind, e.id, &e.payload).unwrap();
        }
        w.flush().unwrap();
        let (back, err) = read_all(&w.into_inner());
        prop_assert!(err.is_none());
        prop_assert_eq!(back, envs);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Frame::decode(&bytes);
        let _ = Frame::decode_with_max(&bytes, 64);
        let _ = read_all(&bytes);
        let _ = decode::<Request>(&bytes, "request");
        let _ = decode::<Hello>(&bytes, "hello");
        let _ = decode::<Result<Vec<String>, Fault>>(&bytes, "reply");
    }

    #[test]
    fn random_bodies_behind_a_valid_prefix_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..100),
        magic_ok in any::<bool>(),
    ) {
        // Garbage that gets past the length check, so the header checks run.
        let mut bytes = ((HEADER_LEN + body.len()) as u32).to_le_bytes().to_vec();
        if magic_ok {
            bytes.extend_from_slice(&MAGIC);
        }
        bytes.extend_from_slice(&body);
        let _ = Frame::decode(&bytes);
        let _ = read_all(&bytes);
    }

    #[test]
    fn truncated_frames_are_typed_errors(env in envelope(), cut in any::<prop::sample::Index>()) {
        let bytes = framed(&env);
        let n = cut.index(bytes.len()); // 0..len: always short of the whole frame
        match Frame::decode(&bytes[..n]) {
            Err(WireError::Truncated { needed, got, .. }) => prop_assert!(got < needed),
            other => prop_assert!(false, "cut at {n}: {other:?}"),
        }
        let (frames, err) = read_all(&bytes[..n]);
        prop_assert!(frames.is_empty());
        if n == 0 {
            prop_assert!(err.is_none(), "an empty stream is a clean end");
        } else {
            prop_assert!(matches!(err, Some(WireError::Truncated { .. })), "{err:?}");
            prop_assert!(err.unwrap().is_disconnect());
        }
    }

    #[test]
    fn bit_flips_give_a_frame_or_a_typed_error(env in envelope(), bit in any::<prop::sample::Index>()) {
        let mut bytes = framed(&env);
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        let byte = bit / 8;
        let r = Frame::decode(&bytes);
        match byte {
            0..=3 => prop_assert!(
                matches!(
                    r,
                    Err(WireError::Truncated { .. } | WireError::TooLarge { .. } | WireError::TooShort { .. })
                ) || r.is_ok(),
                "length flip: {r:?}"
            ),
            4..=7 => prop_assert!(matches!(r, Err(WireError::BadMagic { .. })), "{r:?}"),
            8 => prop_assert!(matches!(r, Err(WireError::VersionMismatch { .. })), "{r:?}"),
            9 => prop_assert!(
                matches!(r, Err(WireError::UnknownKind { .. })) || r.as_ref().is_ok_and(|(e, _)| e.kind != env.kind),
                "{r:?}"
            ),
            _ => {
                // The id or the payload changed: still a frame, of the same size.
                let (d, used) = r.unwrap();
                prop_assert_eq!(used, bytes.len());
                prop_assert_eq!(d.kind, env.kind);
                prop_assert!(d != env);
            }
        }
        let _ = read_all(&bytes);
    }

    #[test]
    fn payloads_round_trip(req in request(), id in any::<u64>()) {
        let payload = encode(&req, "request").unwrap();
        let (env, _) = Frame::decode(&framed(&Envelope::new(Kind::Call, id, payload))).unwrap();
        prop_assert_eq!(env.id, id);
        prop_assert_eq!(decode::<Request>(&env.payload, "request").unwrap(), req);
    }

    #[test]
    fn flipped_payloads_decode_or_fail_typed(req in request(), bit in any::<prop::sample::Index>()) {
        let mut payload = encode(&req, "request").unwrap();
        let bit = bit.index(payload.len() * 8);
        payload[bit / 8] ^= 1 << (bit % 8);
        match decode::<Request>(&payload, "request") {
            Ok(_) => {}
            Err(WireError::Payload { what, .. }) => prop_assert_eq!(what, "request"),
            Err(e) => prop_assert!(false, "{e:?}"),
        }
    }
}

#[test]
fn a_huge_length_prefix_is_refused_before_allocating() {
    let bytes = u32::MAX.to_le_bytes();
    match FrameReader::new(&bytes[..]).read() {
        Err(WireError::TooLarge { len, max }) => {
            assert_eq!((len, max), (u64::from(u32::MAX), DEFAULT_MAX_FRAME));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_name_what_was_wrong() {
    let mut bytes = framed(&Envelope::new(Kind::Call, 1, vec![]));
    bytes[8] = VERSION + 1;
    let e = Frame::decode(&bytes).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "wire protocol version mismatch: the peer speaks version {}, this build speaks {VERSION}",
            VERSION + 1
        )
    );
    let e = Frame::decode(b"\x0e\x00\x00\x00HTTP/1.1 200 OK").unwrap_err();
    assert!(e.to_string().starts_with("bad magic"), "{e}");
    let e = Frame::decode(b"\x02\x00\x00\x00ab").unwrap_err();
    assert_eq!(
        e.to_string(),
        "frame of 2 bytes is shorter than the 14-byte envelope header"
    );
    let e = decode::<Request>(&[7], "request").unwrap_err();
    assert!(
        e.to_string().starts_with("undecodable request payload"),
        "{e}"
    );
    let e = decode::<u8>(&[1, 2], "count").unwrap_err();
    assert_eq!(
        e.to_string(),
        "undecodable count payload: 1 byte left over after the value"
    );
}

#[test]
fn an_oversized_frame_is_refused_by_the_writer() {
    let mut w = FrameWriter::new(Vec::new());
    let big = vec![0u8; DEFAULT_MAX_FRAME];
    assert!(matches!(
        w.write(Kind::Call, 1, &big),
        Err(WireError::TooLarge { .. })
    ));
    assert!(!w.has_pending());
}
