//! The MLLP listener in-process, driven byte by byte: a frame dribbled in small pieces, several
//! messages per connection, the refusals (unknown patient: `AE` 204, nothing stored), a message
//! without its final carriage return, and a frame over the size limit closing the connection.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_model::{Device, DeviceKind, Patient};
use vigil_store::Store;
use vigil_store::sqlite::SqliteStore;

const SB: u8 = 0x0b;
const EB: u8 = 0x1c;
const CR: u8 = 0x0d;

fn sample(name: &str) -> Vec<u8> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vigil-codecs/tests/data/hl7");
    std::fs::read(dir.join(format!("{name}.hl7"))).unwrap()
}

fn framed(message: &[u8]) -> Vec<u8> {
    [&[SB][..], message, &[EB, CR]].concat()
}

/// Reads one framed ACK; `None` when the server closed the connection instead.
async fn read_ack(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match within("an ACK or a close", stream.read(&mut byte)).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => buf.push(byte[0]),
        }
        if buf.ends_with(&[EB, CR]) {
            let text = String::from_utf8(buf[1..buf.len() - 2].to_vec()).unwrap();
            return Some(text);
        }
    }
}

/// MSA-1, MSA-2 and ERR-3's code.
fn msa(ack: &str) -> (String, String, Option<String>) {
    let segments: Vec<Vec<&str>> = ack
        .split('\r')
        .filter(|s| !s.is_empty())
        .map(|s| s.split('|').collect())
        .collect();
    let msa = segments
        .iter()
        .find(|s| s[0] == "MSA")
        .expect("an MSA segment");
    let err = segments
        .iter()
        .find(|s| s[0] == "ERR")
        .map(|s| s[3].split('^').next().unwrap().to_owned());
    (msa[1].to_owned(), msa[2].to_owned(), err)
}

async fn ward() -> (
    tempfile::TempDir,
    Arc<SqliteStore>,
    vigil_server::RunningServer,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let mut patient = Patient::new(pid("icu-1"), "Test Patient");
    patient.mrn = Some("MRN10001".into());
    store.create_patient(&patient).unwrap();
    let mut sender = Device::new(did("monitor-gw"), DeviceKind::new(DeviceKind::HL7_SENDER));
    sender.serial = Some("MONITOR_GW".into());
    store.create_device(&sender, &[7u8; 32]).unwrap();
    let server = start(dir.path(), store.clone(), |c| {
        c.mllp = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    (dir, store, server)
}

#[tokio::test]
async fn a_frame_dribbled_in_small_pieces_and_several_messages_per_connection_are_acknowledged() {
    let (_dir, store, server) = ward().await;
    let mut stream = TcpStream::connect(server.mllp_addr.unwrap()).await.unwrap();
    // Noise before the first frame is skipped; the frame arrives three bytes at a time.
    let first = [b"\r\n".as_ref(), &framed(&sample("oru_01_icu_periodic"))].concat();
    for chunk in first.chunks(3) {
        stream.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ack = read_ack(&mut stream).await.expect("an ACK");
    assert_eq!(msa(&ack), ("AA".into(), "ICU1-000001".into(), None));
    assert!(!stored(store.as_ref(), "0012340000000001").is_empty());

    // The same message again, now without its final CR (as python hl7's mllp_send sends it):
    // accepted, and stored once.
    let before = stored(store.as_ref(), "0012340000000001").len();
    let mut message = sample("oru_01_icu_periodic");
    assert_eq!(message.pop(), Some(CR));
    stream.write_all(&framed(&message)).await.unwrap();
    let ack = read_ack(&mut stream).await.expect("an ACK");
    assert_eq!(msa(&ack).0, "AA");
    assert_eq!(stored(store.as_ref(), "0012340000000001").len(), before);
    server.shutdown().await;
}

#[tokio::test]
async fn an_unknown_patient_is_refused_with_ae_and_nothing_is_stored() {
    let (_dir, store, server) = ward().await;
    let mut stream = TcpStream::connect(server.mllp_addr.unwrap()).await.unwrap();
    let message = String::from_utf8(sample("oru_01_icu_periodic"))
        .unwrap()
        .replace("MRN10001", "MRN99999");
    stream.write_all(&framed(message.as_bytes())).await.unwrap();
    let ack = read_ack(&mut stream).await.expect("an ACK");
    assert_eq!(
        msa(&ack),
        ("AE".into(), "ICU1-000001".into(), Some("204".into()))
    );
    assert!(ack.contains("PID^1^3"), "{ack}");
    assert!(stored(store.as_ref(), "0012340000000001").is_empty());
    // Kept for the administrator, with its reason and the message as received.
    let logged = eventually("the refusal in the log", || {
        store
            .refusals(&vigil_store::RefusalQuery {
                source: Some("mllp".into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .pop()
    })
    .await;
    assert_eq!(logged.message.kind, "unknown_patient");
    assert!(
        logged.message.reason.contains("204"),
        "{}",
        logged.message.reason
    );
    assert!(logged.message.payload.starts_with(b"MSH|"));
    // The connection stays usable.
    stream
        .write_all(&framed(&sample("oru_01_icu_periodic")))
        .await
        .unwrap();
    assert_eq!(msa(&read_ack(&mut stream).await.unwrap()).0, "AA");
    server.shutdown().await;
}

#[tokio::test]
async fn a_frame_over_the_size_limit_closes_the_connection_unanswered() {
    let (_dir, store, server) = ward().await;
    let mut stream = TcpStream::connect(server.mllp_addr.unwrap()).await.unwrap();
    let huge = vec![b'A'; vigil_codecs::Hl7Limits::default().max_bytes + 10];
    let _ = stream.write_all(&framed(&huge)).await;
    assert_eq!(read_ack(&mut stream).await, None);
    assert!(stored(store.as_ref(), "0012340000000001").is_empty());
    server.shutdown().await;
}
