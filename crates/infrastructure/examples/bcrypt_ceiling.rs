//! The login ceiling for the benchmark: how many bcrypt verifications per
//! second this machine does at a cost, on every core at once, with the same
//! bcrypt crate the server uses.
//!
//! `cargo run --release -p userhub-infrastructure --example bcrypt_ceiling -- <cost> <seconds>`
//! prints `verifications_per_second=<n> threads=<t>`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let cost: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(12);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let hash = match bcrypt::hash("correct horse battery staple", cost) {
        Ok(hash) => hash,
        Err(err) => {
            eprintln!("hashing failed: {err}");
            std::process::exit(1);
        }
    };
    let done = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while Instant::now() < deadline {
                    let ok = bcrypt::verify("correct horse battery staple", &hash).unwrap_or(false);
                    assert!(ok, "verification must succeed");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!("verifications_per_second={rate:.2} threads={threads}");
}
