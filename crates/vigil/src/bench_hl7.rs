//! `vigil bench --hl7`: HL7 v2 ORU^R01 messages per second through MLLP, each acknowledged only
//! after its readings are committed, as a bedside monitor gateway would send them: one MLLP
//! connection per monitor, one message in flight per connection (the sender waits for each ACK,
//! as MLLP senders do).
//!
//! The message is the reference ICU sample (`oru_01_icu_periodic`: heart rate, SpO2, a blood
//! pressure panel, respiration rate and temperature, with the containment rows and a second pulse
//! rate a real monitor sends), with its own equipment, patient, control id and time per message.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_model::{Device, DeviceId, DeviceKind, Patient, PatientId};

use crate::bench::{BenchArgs, BenchStore, Reaped, free_port, wait_for_port};

const SAMPLE: &str = include_str!("../../vigil-codecs/tests/data/hl7/oru_01_icu_periodic.hl7");

/// The sample for monitor `monitor`, message `n`: its own equipment id, patient, control id, and
/// a time one minute after the previous message's.
fn message(monitor: usize, n: u64) -> Vec<u8> {
    let base = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00+01:00")
        .expect("a valid literal")
        + chrono::Duration::minutes(n as i64);
    let at = |d: chrono::Duration| (base + d).format("%Y%m%d%H%M%S").to_string();
    SAMPLE
        .replace("20250114103000", &at(chrono::Duration::zero()))
        .replace("20250114102700", &at(chrono::Duration::minutes(-3)))
        .replace("0012340000000001", &format!("00BE{monitor:012X}"))
        .replace("MRN10001", &format!("BENCH-MRN-{monitor}"))
        .replace("ICU1-000001", &format!("B{monitor}-{n}"))
        .into_bytes()
}

async fn read_ack(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<bool> {
    buf.clear();
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.ends_with(&[0x1c, 0x0d]) {
            return Ok(buf.windows(7).any(|w| w == b"\rMSA|AA"));
        }
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let monitors = args.devices.max(1);
    let bench_store = BenchStore::new()?;
    let store = bench_store.open()?;
    let mut sender = Device::new(
        DeviceId::new("bench-gw")?,
        DeviceKind::new(DeviceKind::HL7_SENDER),
    );
    sender.serial = Some("MONITOR_GW".into());
    store.create_device(&sender, &[1u8; 32])?;
    for m in 0..monitors {
        let mut patient = Patient::new(PatientId::new(format!("bench-p{m:05}"))?, "Bench Patient");
        patient.mrn = Some(format!("BENCH-MRN-{m}"));
        store.create_patient(&patient)?;
    }
    drop(store);

    let (http, mqtt, mllp) = (free_port()?, free_port()?, free_port()?);
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(["serve", "--data-dir"])
        .arg(&bench_store.data_dir)
        .arg("--key-file")
        .arg(&bench_store.key_file)
        .args([
            "--http",
            &format!("127.0.0.1:{http}"),
            "--mqtt",
            &format!("127.0.0.1:{mqtt}"),
            "--mllp",
            &format!("127.0.0.1:{mllp}"),
        ])
        .env("VIGIL_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting vigil serve")?;
    let _guard = Reaped(child);
    let addr = format!("127.0.0.1:{mllp}").parse()?;
    wait_for_port(addr).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for m in 0..monitors {
        let (stop, acked, refused) = (stop.clone(), acked.clone(), refused.clone());
        tasks.spawn(async move {
            let mut latency = Histogram::<u64>::new(3).expect("valid precision");
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let mut buf = Vec::with_capacity(1024);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let framed = [&[0x0b][..], &message(m, n), &[0x1c, 0x0d]].concat();
                let sent = Instant::now();
                stream.write_all(&framed).await?;
                let ok = read_ack(&mut stream, &mut buf).await?;
                let _ = latency.record(sent.elapsed().as_micros() as u64);
                if ok {
                    acked.fetch_add(1, Ordering::Relaxed);
                } else {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
            anyhow::Ok(latency)
        });
    }
    // Warm up, then measure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start_count = acked.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let measured = acked.load(Ordering::Relaxed) - start_count;
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut latency = Histogram::<u64>::new(3).expect("valid precision");
    while let Some(done) = tasks.join_next().await {
        latency.add(done??)?;
    }
    let refused = refused.load(Ordering::Relaxed);
    if refused > 0 {
        bail!("{refused} messages were not answered AA; the benchmark is invalid");
    }
    let rate = measured as f64 / seconds;
    println!(
        "HL7 v2 ORU^R01 over MLLP, {monitors} connections, one message in flight each, ACK after commit:"
    );
    println!(
        "  {rate:.0} messages/s ({:.0} readings/s: 5 per message), {measured} messages in {seconds:.1} s",
        rate * 5.0
    );
    println!(
        "  message → AA latency: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.value_at_quantile(0.999) as f64 / 1000.0,
        latency.max() as f64 / 1000.0
    );
    Ok(())
}
