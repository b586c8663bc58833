//! Arbitrary bytes into the embedded broker's packet reader (`sources::mqtt::wire`), as a client
//! would send them: nothing may panic, every packet read must consume bytes (so the connection's
//! read loop cannot spin), asking for more bytes must consume none and only happen while the
//! buffer is within one packet of the size limit (so a client cannot make it grow without bound),
//! and every error must display.
//!
//! The first byte picks the mode:
//! - even: the rest is a connection's byte stream, a CONNECT via `read_connect` and then packets
//!   via `read` with the protocol that CONNECT chose;
//! - odd: the rest goes straight to `read`, MQTT 3.1.1 when bit 1 is clear and MQTT 5 when set
//!   (packets after a CONNECT, without having to get a CONNECT through first).

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use vigil_server::sources::mqtt::wire::{Protocol, WireError, read, read_connect};

/// The broker takes its packet limit as a parameter (300 KiB by default); a small one makes the
/// size checks reachable.
const MAX_SIZE: usize = 4096;
/// A fixed header is at most 5 bytes (type and flags, then a remaining length of up to 4 bytes).
const MAX_FIXED_HEADER: usize = 5;

fn check_needs_more(buf: &BytesMut, before: usize) {
    assert_eq!(buf.len(), before, "asking for more bytes consumed some");
    assert!(
        buf.len() < MAX_SIZE + MAX_FIXED_HEADER,
        "asked for more bytes with {} buffered",
        buf.len()
    );
}

fn read_all(protocol: Protocol, buf: &mut BytesMut) {
    loop {
        let before = buf.len();
        match read(protocol, buf, MAX_SIZE) {
            Ok(Some(_)) => assert!(
                buf.len() < before,
                "read returned a packet without consuming bytes ({before} left)"
            ),
            Ok(None) => return check_needs_more(buf, before),
            Err(e) => return check_error(&e),
        }
    }
}

fn check_error(e: &WireError) {
    assert!(!e.to_string().is_empty());
}

fuzz_target!(|bytes: &[u8]| {
    let Some((&mode, rest)) = bytes.split_first() else {
        return;
    };
    let mut buf = BytesMut::from(rest);
    if mode & 1 == 0 {
        let before = buf.len();
        match read_connect(&mut buf, MAX_SIZE) {
            Ok(Some(connect)) => {
                assert!(
                    buf.len() < before,
                    "a CONNECT was read without consuming bytes"
                );
                read_all(connect.protocol, &mut buf);
            }
            Ok(None) => check_needs_more(&buf, before),
            Err(e) => check_error(&e),
        }
    } else {
        let protocol = if mode & 2 == 0 {
            Protocol::V311
        } else {
            Protocol::V5
        };
        read_all(protocol, &mut buf);
    }
});
