//! Fault drills against the real server binary and a PostgreSQL cluster of
//! their own (started on a free port, so that they can stop it, restart it
//! and terminate its backends without touching a shared server).
//!
//! Each drill prints `name: PASS|FAIL figures`; the last line is
//! `N passed, M failed`, and the exit code is 1 if any failed.
//!
//! `USERHUB_SERVER_BIN` names the server binary (default: the debug build
//! beside this one); `PG_BIN` the PostgreSQL binaries (default: the newest
//! under /usr/lib/postgresql).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod database;
mod harness;
mod starts;
mod webhooks;

use std::path::PathBuf;

use database::{burst_lockout, database_restart, one_winner, replicas, sigterm_drain};
use harness::Cluster;
use starts::{closed_stdout, first_start_killed, key_rotation, late_database};
use webhooks::{webhook_kills, webhook_two_instances};

#[tokio::main]
async fn main() {
    let logs = PathBuf::from(std::env::var("DRILL_LOGS").unwrap_or_else(|_| "build/drills".into()));
    std::fs::create_dir_all(&logs).unwrap();
    let cluster = Cluster::start_new();
    // Drill names as arguments run only those.
    let only: Vec<String> = std::env::args().skip(1).collect();
    let mut results = Vec::new();
    for name in [
        "database-restart",
        "sigterm-drain",
        "replicas",
        "one-winner",
        "burst-lockout",
        "first-start-killed",
        "closed-stdout",
        "late-database",
        "key-rotation",
        "webhook-kills",
        "webhook-two-instances",
    ] {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let outcome = match name {
            "database-restart" => database_restart(&cluster, &logs).await,
            "sigterm-drain" => sigterm_drain(&cluster, &logs).await,
            "replicas" => replicas(&cluster, &logs).await,
            "one-winner" => one_winner(&cluster, &logs).await,
            "burst-lockout" => burst_lockout(&cluster, &logs).await,
            "first-start-killed" => first_start_killed(&cluster, &logs).await,
            "closed-stdout" => closed_stdout(&cluster, &logs).await,
            "late-database" => late_database(&cluster, &logs).await,
            "webhook-kills" => webhook_kills(&cluster, &logs).await,
            "webhook-two-instances" => webhook_two_instances(&cluster, &logs).await,
            _ => key_rotation(&cluster, &logs).await,
        };
        println!(
            "{name}: {} {}",
            if outcome.pass { "PASS" } else { "FAIL" },
            outcome.figures
        );
        results.push(outcome.pass);
    }
    let passed = results.iter().filter(|p| **p).count();
    println!("{passed} passed, {} failed", results.len() - passed);
    drop(cluster);
    if passed != results.len() {
        std::process::exit(1);
    }
}
