//! `vigil bench-alarms`: the alarm-burden benchmark (`vigil_sim::burden`), printed as Markdown.
//! Simulated time, the real decoder and rules engine, no server.

use anyhow::{Context, bail};
use clap::Args;
use vigil_sim::burden::{self, BurdenConfig};

#[derive(Args, Debug)]
pub struct BenchAlarmsArgs {
    /// Beds on the simulated ward.
    #[arg(long, default_value_t = 20)]
    pub patients: usize,
    /// Simulated hours.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Seed of the simulated ward (the demo's by default).
    #[arg(long, default_value_t = burden::DEFAULT_SEED)]
    pub seed: u64,
}

pub fn run(args: BenchAlarmsArgs) -> anyhow::Result<()> {
    if !(1..=500).contains(&args.patients) {
        bail!("--patients must be 1 to 500");
    }
    if !(args.hours.is_finite() && args.hours > 0.0 && args.hours <= 24.0 * 7.0) {
        bail!("--hours must be more than 0 and at most 168");
    }
    let config = BurdenConfig {
        patients: args.patients,
        hours: args.hours,
        seed: args.seed,
        ..BurdenConfig::default()
    };
    let started = std::time::Instant::now();
    let report = burden::run(&config).context("the alarm-burden benchmark failed")?;
    print!("{}", report.markdown());
    eprintln!(
        "simulated {} h of {} patients in {:.1} s",
        args.hours,
        args.patients,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
