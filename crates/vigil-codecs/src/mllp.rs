//! # MLLP framing
//!
//! The HL7 Minimal Lower Layer Protocol (HL7 Version 2 Transport Specification, MLLP release 2,
//! "block format"; reference `hl7v2.md` §4): on a TCP byte stream every message travels as
//!
//! ```text
//! <SB> payload <EB><CR>      SB = 0x0B, EB = 0x1C, CR = 0x0D
//! ```
//!
//! [`MllpCodec`] is a [`tokio_util::codec`] `Decoder` (payloads out as [`Bytes`]) and `Encoder`
//! (payloads in, framed). Its contract:
//!
//! * One read may hold part of a frame, or several: a frame is returned once its `EB CR` has
//!   arrived, whatever the split, and nothing is consumed while a frame is incomplete.
//! * Bytes before a start block are discarded and counted ([`MllpCodec::discarded_bytes`]); they
//!   are not an error (a peer's keep-alive noise or the tail of a broken frame).
//! * A payload longer than `max_frame` bytes is [`MllpError::FrameTooLarge`], raised as soon as
//!   byte `max_frame + 1` arrives (memory stays bounded, the frame is never buffered whole).
//! * `EB` not followed by `CR` is [`MllpError::MissingCarriageReturn`]; a start block inside a
//!   frame is [`MllpError::StartBlockInFrame`] (0x0B, 0x1C cannot occur in HL7 data, reference §4).
//! * After any of these errors the codec has **resynchronised**: it dropped the broken frame and
//!   continues at the next start block (the new frame's own start block, for
//!   `StartBlockInFrame`). [`split_frames`] and a caller that drives `decode` itself go on.
//! * The end of the stream inside a frame is [`MllpError::Truncated`]; no ACK is owed for it
//!   (reference §5).
//!
//! **Policy for a server** (`tokio_util::codec::FramedRead`): FramedRead yields the error and
//! then ends the stream; close the connection. No HL7 ACK can be sent for a frame that was never
//! read; a monitor reconnects and resends what it has not had acknowledged (GE behaviour,
//! reference §4), and the connection of a peer that frames wrongly stops costing work.
//!
//! The encoder refuses a payload that holds 0x0B or 0x1C (it could not be read back as one frame)
//! or is longer than `max_frame`.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Start block.
pub const SB: u8 = 0x0B;
/// End block.
pub const EB: u8 = 0x1C;
/// Carriage return, after the end block.
pub const CR: u8 = 0x0D;

/// A framing error. `kind` is a stable label for logs and metrics.
#[derive(Debug, thiserror::Error)]
pub enum MllpError {
    #[error("MLLP frame longer than the limit of {max} bytes")]
    FrameTooLarge { max: usize },
    #[error("MLLP end block 0x1C followed by 0x{found:02X} instead of 0x0D")]
    MissingCarriageReturn { found: u8 },
    #[error("MLLP start block 0x0B inside a frame after {payload} bytes; the frame is dropped")]
    StartBlockInFrame { payload: usize },
    #[error("the stream ended inside an MLLP frame after {payload} payload bytes")]
    Truncated { payload: usize },
    #[error("payload to send holds byte 0x{byte:02X} at offset {offset}, which MLLP reserves")]
    ReservedByteInPayload { byte: u8, offset: usize },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl MllpError {
    pub fn kind(&self) -> &'static str {
        match self {
            MllpError::FrameTooLarge { .. } => "frame_too_large",
            MllpError::MissingCarriageReturn { .. } => "missing_carriage_return",
            MllpError::StartBlockInFrame { .. } => "start_block_in_frame",
            MllpError::Truncated { .. } => "truncated",
            MllpError::ReservedByteInPayload { .. } => "reserved_byte_in_payload",
            MllpError::Io(_) => "io",
        }
    }
}

/// Where the decoder is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for a start block.
    Hunting,
    /// After a start block: the buffer starts with the payload; the first `scanned` bytes of it
    /// hold neither SB nor EB.
    InFrame { scanned: usize },
}

/// MLLP framing as a tokio-util codec. See the module documentation.
#[derive(Debug, Clone)]
pub struct MllpCodec {
    max_frame: usize,
    state: State,
    discarded: u64,
}

impl MllpCodec {
    /// A codec that accepts payloads of at most `max_frame` bytes (use
    /// [`crate::hl7::Hl7Limits::max_bytes`]).
    pub fn new(max_frame: usize) -> Self {
        MllpCodec {
            max_frame,
            state: State::Hunting,
            discarded: 0,
        }
    }

    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Bytes discarded so far because they were outside any frame.
    pub fn discarded_bytes(&self) -> u64 {
        self.discarded
    }

    fn discard(&mut self, n: usize) {
        self.discarded = self.discarded.saturating_add(n as u64);
    }
}

impl Decoder for MllpCodec {
    type Item = Bytes;
    type Error = MllpError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, MllpError> {
        loop {
            match self.state {
                State::Hunting => match buf.iter().position(|&b| b == SB) {
                    None => {
                        self.discard(buf.len());
                        buf.clear();
                        return Ok(None);
                    }
                    Some(start) => {
                        self.discard(start);
                        buf.advance(start + 1);
                        self.state = State::InFrame { scanned: 0 };
                    }
                },
                State::InFrame { scanned } => {
                    // FramedRead only ever appends to the buffer; a caller that hands over a
                    // shorter one must not make this panic.
                    let scanned = scanned.min(buf.len());
                    let found = buf[scanned..]
                        .iter()
                        .position(|&b| b == SB || b == EB)
                        .map(|i| i + scanned);
                    let limit = self.max_frame;
                    match found {
                        // The payload so far is within the limit only up to `max_frame` bytes.
                        Some(i) if i > limit => return Err(self.too_large(buf)),
                        None if buf.len() > limit => return Err(self.too_large(buf)),
                        None => {
                            self.state = State::InFrame { scanned: buf.len() };
                            return Ok(None);
                        }
                        Some(i) if buf[i] == SB => {
                            // Keep the new start block: the next frame begins there.
                            buf.advance(i);
                            self.state = State::Hunting;
                            return Err(MllpError::StartBlockInFrame { payload: i });
                        }
                        Some(i) => match buf.get(i + 1) {
                            None => {
                                self.state = State::InFrame { scanned: i };
                                return Ok(None);
                            }
                            Some(&CR) => {
                                let payload = buf.split_to(i).freeze();
                                buf.advance(2);
                                self.state = State::Hunting;
                                return Ok(Some(payload));
                            }
                            Some(&found) => {
                                // Drop through the end block; the byte after it is looked at
                                // afresh (it may start the next frame).
                                buf.advance(i + 1);
                                self.state = State::Hunting;
                                return Err(MllpError::MissingCarriageReturn { found });
                            }
                        },
                    }
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, MllpError> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        match self.state {
            State::Hunting => Ok(None),
            State::InFrame { .. } => {
                let payload = buf.len();
                buf.clear();
                self.state = State::Hunting;
                Err(MllpError::Truncated { payload })
            }
        }
    }
}

impl MllpCodec {
    /// Drops the first `max_frame + 1` payload bytes (all that is known to belong to the oversize
    /// frame) and hunts for the next start block from there.
    fn too_large(&mut self, buf: &mut BytesMut) -> MllpError {
        buf.advance(self.max_frame + 1);
        self.state = State::Hunting;
        MllpError::FrameTooLarge {
            max: self.max_frame,
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for MllpCodec {
    type Error = MllpError;

    fn encode(&mut self, payload: T, dst: &mut BytesMut) -> Result<(), MllpError> {
        let payload = payload.as_ref();
        if let Some(offset) = payload.iter().position(|&b| b == SB || b == EB) {
            return Err(MllpError::ReservedByteInPayload {
                byte: payload[offset],
                offset,
            });
        }
        if payload.len() > self.max_frame {
            return Err(MllpError::FrameTooLarge {
                max: self.max_frame,
            });
        }
        dst.reserve(payload.len() + 3);
        dst.put_u8(SB);
        dst.put_slice(payload);
        dst.put_slice(&[EB, CR]);
        Ok(())
    }
}

/// What [`split_frames`] found in a byte buffer.
#[derive(Debug, Default)]
pub struct SplitFrames {
    /// Frames and framing errors, in stream order.
    pub frames: Vec<Result<Bytes, MllpError>>,
    /// Bytes outside any frame.
    pub discarded: u64,
}

/// Splits a complete byte stream into frames, exactly as [`MllpCodec`] does when it reads the same
/// bytes over any number of reads and then the end of the stream. Pure; for tests, tools and the
/// fuzz target.
pub fn split_frames(bytes: &[u8], max_frame: usize) -> SplitFrames {
    let mut codec = MllpCodec::new(max_frame);
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(None) => break,
            item => frames.push(item.map(|frame| frame.unwrap_or_default())),
        }
    }
    SplitFrames {
        frames,
        discarded: codec.discarded_bytes(),
    }
}

/// Frames one payload (see [`MllpCodec`]'s `Encoder`).
pub fn frame(payload: &[u8], max_frame: usize) -> Result<Vec<u8>, MllpError> {
    let mut out = BytesMut::new();
    MllpCodec::new(max_frame).encode(payload, &mut out)?;
    Ok(out.to_vec())
}

#[cfg(test)]
mod tests;
