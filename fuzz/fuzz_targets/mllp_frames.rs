//! Arbitrary bytes into the MLLP codec, as a TCP connection delivers them: nothing may panic,
//! reading the stream in pieces must give exactly what reading it at once gives (frames, errors,
//! discarded bytes), the buffer never holds more than one frame's worth while waiting, and every
//! frame is within the limit, free of framing bytes, and re-frames to itself.
//!
//! The first byte is the frame limit (0–255, small so that oversize frames are reached), the
//! second the size of each read (1–64); the rest is the stream.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use vigil_codecs::mllp::{self, EB, MllpCodec, SB};

fuzz_target!(|data: &[u8]| {
    let [limit, read, stream @ ..] = data else {
        return;
    };
    let max = usize::from(*limit);
    let read = usize::from(*read) % 64 + 1;

    let whole = mllp::split_frames(stream, max);
    let whole_items: Vec<Result<Vec<u8>, &str>> = whole
        .frames
        .iter()
        .map(|f| f.as_ref().map(|b| b.to_vec()).map_err(|e| e.kind()))
        .collect();

    let mut codec = MllpCodec::new(max);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for chunk in stream.chunks(read) {
        buf.extend_from_slice(chunk);
        // An item that consumes nothing in its call (a start block inside a frame whose own start
        // block came in an earlier read) must be followed by progress: the read loop cannot spin.
        let mut idle = false;
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    assert!(buf.len() < before, "a frame without consuming bytes");
                    items.push(Ok(frame.to_vec()));
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    items.push(Err(e.kind()));
                }
            }
            let consumed = buf.len() < before;
            assert!(consumed || !idle, "two items in a row without consuming bytes");
            idle = !consumed;
        }
        assert!(buf.len() <= max + 1, "{} bytes buffered for a limit of {max}", buf.len());
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(None) => break,
            Ok(Some(frame)) => items.push(Ok(frame.to_vec())),
            Err(e) => items.push(Err(e.kind())),
        }
    }
    assert!(buf.is_empty());
    assert_eq!(items, whole_items, "reads of {read} bytes");
    assert_eq!(codec.discarded_bytes(), whole.discarded);

    for frame in items.iter().filter_map(|i| i.as_ref().ok()) {
        assert!(frame.len() <= max);
        assert!(!frame.iter().any(|&b| b == SB || b == EB));
        let framed = mllp::frame(frame, max).expect("a decoded frame re-frames");
        let again = mllp::split_frames(&framed, max);
        assert_eq!(again.frames.len(), 1);
        assert_eq!(again.frames[0].as_deref().ok(), Some(&frame[..]));
    }
});
