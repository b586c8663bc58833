//! Tests of the MLLP framing contract, one group per clause of the module documentation.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

use super::*;

const ORU_01: &[u8] = include_bytes!("../../tests/data/hl7/oru_01_icu_periodic.mllp");
const ORU_03: &[u8] = include_bytes!("../../tests/data/hl7/oru_03_probe_off_fahrenheit.mllp");
const ORU_01_HL7: &[u8] = include_bytes!("../../tests/data/hl7/oru_01_icu_periodic.hl7");
const ORU_03_HL7: &[u8] = include_bytes!("../../tests/data/hl7/oru_03_probe_off_fahrenheit.hl7");

/// What a decoder produced, comparable: payloads, and errors by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Frame(Vec<u8>),
    Error(&'static str),
}

fn out(item: Result<Bytes, MllpError>) -> Out {
    match item {
        Ok(frame) => Out::Frame(frame.to_vec()),
        Err(e) => Out::Error(e.kind()),
    }
}

/// Feeds `chunks` one read at a time, decoding everything available after each, then the end of
/// the stream; checks that no call consumes bytes without cause. Returns what came out and the
/// discarded count.
fn feed(chunks: &[&[u8]], max_frame: usize) -> (Vec<Out>, u64) {
    let mut codec = MllpCodec::new(max_frame);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(None) => break,
                item => got.push(out(item.map(Option::unwrap))),
            }
        }
        // The decoder never holds more than one frame's worth while waiting.
        assert!(buf.len() <= max_frame + 1, "{} bytes buffered", buf.len());
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(None) => break,
            item => got.push(out(item.map(Option::unwrap))),
        }
    }
    assert!(buf.is_empty());
    (got, codec.discarded_bytes())
}

fn whole(bytes: &[u8], max_frame: usize) -> (Vec<Out>, u64) {
    let split = split_frames(bytes, max_frame);
    (split.frames.into_iter().map(out).collect(), split.discarded)
}

fn frames(payloads: &[&[u8]]) -> Vec<Out> {
    payloads.iter().map(|p| Out::Frame(p.to_vec())).collect()
}

const MAX: usize = 1 << 16;

#[test]
fn the_reference_samples_unframe_to_their_messages() {
    let stream = [ORU_01, ORU_03].concat();
    assert_eq!(whole(&stream, MAX), (frames(&[ORU_01_HL7, ORU_03_HL7]), 0));
}

#[test]
fn a_two_message_stream_split_at_every_byte_position() {
    let stream = [ORU_01, ORU_03].concat();
    let want = frames(&[ORU_01_HL7, ORU_03_HL7]);
    for at in 0..=stream.len() {
        let (first, second) = stream.split_at(at);
        assert_eq!(
            feed(&[first, second], MAX),
            (want.clone(), 0),
            "split at {at}"
        );
    }
    // And one byte per read.
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(feed(&bytes, MAX), (want, 0));
}

#[test]
fn a_half_sent_frame_waits_without_losing_bytes() {
    let mut codec = MllpCodec::new(MAX);
    let mut buf = BytesMut::from(&ORU_01[..100]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert_eq!(buf.len(), 99, "only the start block is consumed");
    // Up to the end block: still waiting for the carriage return.
    buf.extend_from_slice(&ORU_01[100..ORU_01.len() - 1]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    buf.extend_from_slice(&ORU_01[ORU_01.len() - 1..]);
    assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), ORU_01_HL7);
    assert!(buf.is_empty());
    assert!(codec.decode(&mut buf).unwrap().is_none());
}

#[test]
fn bytes_before_a_start_block_are_discarded_and_counted() {
    let stream = [&b"\r\nnoise"[..], ORU_01, b"xx", ORU_03, b"trailing"].concat();
    let want = frames(&[ORU_01_HL7, ORU_03_HL7]);
    assert_eq!(whole(&stream, MAX), (want.clone(), 7 + 2 + 8));
    // The same count when the noise arrives in pieces.
    let pieces: Vec<&[u8]> = stream.chunks(3).collect();
    assert_eq!(feed(&pieces, MAX), (want, 17));
    // Only noise: nothing, and no error at the end of the stream.
    assert_eq!(whole(b"\x1c\r hello \r", MAX), (vec![], 10));
}

#[test]
fn an_empty_frame_is_a_frame() {
    assert_eq!(whole(b"\x0b\x1c\r", MAX), (frames(&[b""]), 0));
}

#[test]
fn frames_over_the_limit_are_refused_as_soon_as_they_are_known_to_be() {
    let payload = vec![b'a'; 10];
    let framed = frame(&payload, 10).unwrap();
    assert_eq!(whole(&framed, 10), (frames(&[&payload]), 0));
    // The 10 payload bytes go with the error; the end block and CR are discarded.
    assert_eq!(whole(&framed, 9), (vec![Out::Error("frame_too_large")], 2));

    // The error comes at byte max + 1, before the frame's end has arrived.
    let mut codec = MllpCodec::new(9);
    let mut buf = BytesMut::from(&framed[..10]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    buf.extend_from_slice(&framed[10..11]);
    let e = codec.decode(&mut buf).unwrap_err();
    assert!(matches!(e, MllpError::FrameTooLarge { max: 9 }));
    assert_eq!(e.to_string(), "MLLP frame longer than the limit of 9 bytes");

    // The codec resynchronises: the rest of the oversize frame is discarded and the next frame
    // is read.
    let stream = [&framed[..], &frame(b"ok", 10).unwrap()].concat();
    assert_eq!(
        whole(&stream, 9),
        (
            vec![Out::Error("frame_too_large"), Out::Frame(b"ok".to_vec())],
            2
        )
    );
    for at in 0..=stream.len() {
        let (a, b) = stream.split_at(at);
        assert_eq!(feed(&[a, b], 9), whole(&stream, 9), "split at {at}");
    }
}

#[test]
fn an_end_block_without_carriage_return_is_an_error_and_resynchronises() {
    let stream = b"\x0bfirst\x1cX\x0bsecond\x1c\r";
    assert_eq!(
        whole(stream, MAX),
        (
            vec![
                Out::Error("missing_carriage_return"),
                Out::Frame(b"second".to_vec())
            ],
            1
        )
    );
    let e = split_frames(stream, MAX).frames.remove(0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "MLLP end block 0x1C followed by 0x58 instead of 0x0D"
    );
    // The byte after the end block may itself start the next frame.
    assert_eq!(
        whole(b"\x0bfirst\x1c\x0bsecond\x1c\r", MAX),
        (
            vec![
                Out::Error("missing_carriage_return"),
                Out::Frame(b"second".to_vec())
            ],
            0
        )
    );
    // A missing 0x0D at the very end of the stream: the frame is truncated.
    assert_eq!(
        whole(b"\x0bfirst\x1c", MAX),
        (vec![Out::Error("truncated")], 0)
    );
}

#[test]
fn a_start_block_inside_a_frame_drops_the_frame_and_starts_anew() {
    let stream = b"\x0bcut off\x0bwhole\x1c\r";
    assert_eq!(
        whole(stream, MAX),
        (
            vec![
                Out::Error("start_block_in_frame"),
                Out::Frame(b"whole".to_vec())
            ],
            0
        )
    );
    for at in 0..=stream.len() {
        let (a, b) = stream.split_at(at);
        assert_eq!(feed(&[a, b], MAX), whole(stream, MAX), "split at {at}");
    }
}

#[test]
fn the_end_of_the_stream_inside_a_frame_is_truncation() {
    let cut = &ORU_01[..500];
    let (got, _) = whole(cut, MAX);
    assert_eq!(got, [Out::Error("truncated")]);
    let e = split_frames(cut, MAX).frames.remove(0).unwrap_err();
    assert!(matches!(e, MllpError::Truncated { payload: 499 }));
    // A frame and then half of another.
    let stream = [ORU_03, &ORU_01[..10]].concat();
    assert_eq!(
        whole(&stream, MAX).0,
        [Out::Frame(ORU_03_HL7.to_vec()), Out::Error("truncated")]
    );
}

#[test]
fn the_encoder_frames_and_refuses_reserved_bytes_and_oversize() {
    let mut codec = MllpCodec::new(8);
    let mut dst = BytesMut::new();
    codec.encode(&b"MSA|AA"[..], &mut dst).unwrap();
    codec.encode(b"x".to_vec(), &mut dst).unwrap();
    assert_eq!(&dst[..], b"\x0bMSA|AA\x1c\r\x0bx\x1c\r");
    let e = codec.encode(&b"a\x1cb"[..], &mut dst).unwrap_err();
    assert!(matches!(
        e,
        MllpError::ReservedByteInPayload {
            byte: 0x1C,
            offset: 1
        }
    ));
    assert!(matches!(
        codec.encode(&b"\x0b"[..], &mut dst).unwrap_err(),
        MllpError::ReservedByteInPayload { byte: 0x0B, .. }
    ));
    assert!(matches!(
        codec.encode(&[b'a'; 9][..], &mut dst).unwrap_err(),
        MllpError::FrameTooLarge { max: 8 }
    ));
    assert_eq!(dst.len(), 13, "a refused payload writes nothing");
    assert_eq!(codec.max_frame(), 8);
}

/// Through tokio-util's `FramedRead`, as a server reads a connection: frames split across reads
/// arrive whole; an error is yielded and then the stream ends (the connection is closed).
#[tokio::test]
async fn framed_read_over_a_byte_stream() {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    use tokio_util::codec::FramedRead;

    let (mut client, server) = tokio::io::duplex(64);
    let writer = tokio::spawn(async move {
        let stream = [ORU_01, b"noise", ORU_03, b"\x0bbroken\x1cX", ORU_01].concat();
        for chunk in stream.chunks(37) {
            // The reader stops after the error and closes its end.
            if client.write_all(chunk).await.is_err() {
                return;
            }
        }
    });
    let mut framed = FramedRead::new(server, MllpCodec::new(MAX));
    assert_eq!(framed.next().await.unwrap().unwrap(), ORU_01_HL7);
    assert_eq!(framed.next().await.unwrap().unwrap(), ORU_03_HL7);
    assert_eq!(framed.decoder().discarded_bytes(), 5);
    let e = framed.next().await.unwrap().unwrap_err();
    assert_eq!(e.kind(), "missing_carriage_return");
    assert!(
        framed.next().await.is_none(),
        "the stream ends after an error"
    );
    drop(framed);
    writer.await.unwrap();
}

proptest! {
    /// Encode → decode round-trips any payloads without the reserved bytes, however the stream
    /// is cut into reads; payloads with them are refused by the encoder.
    #[test]
    fn encode_decode_round_trips(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..6),
        cuts in prop::collection::vec(0usize..2000, 0..8),
    ) {
        let mut codec = MllpCodec::new(300);
        let mut stream = BytesMut::new();
        let mut sent = Vec::new();
        for payload in &payloads {
            let reserved = payload.iter().any(|&b| b == SB || b == EB);
            let before = stream.len();
            match codec.encode(&payload[..], &mut stream) {
                Ok(()) => {
                    prop_assert!(!reserved);
                    sent.push(Out::Frame(payload.clone()));
                }
                Err(e) => {
                    prop_assert!(reserved, "{e}");
                    prop_assert_eq!(stream.len(), before);
                }
            }
        }
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
        cuts.sort_unstable();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([stream.len()]) {
            chunks.push(&stream[from..cut]);
            from = cut;
        }
        prop_assert_eq!(feed(&chunks, 300), (sent.clone(), 0));
        prop_assert_eq!(whole(&stream, 300), (sent, 0));
    }

    /// Whatever the bytes, reading them in any pieces gives what reading them at once gives.
    #[test]
    fn decoding_does_not_depend_on_how_reads_are_cut(
        bytes in prop::collection::vec(
            prop_oneof![Just(SB), Just(EB), Just(CR), any::<u8>()], 0..400),
        cut in 0usize..400,
        max in 0usize..64,
    ) {
        let (a, b) = bytes.split_at(cut.min(bytes.len()));
        prop_assert_eq!(feed(&[a, b], max), whole(&bytes, max));
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(feed(&singles, max), whole(&bytes, max));
    }
}
