//! Structured logging with `RUST_LOG`-style filtering, written so that a
//! log line can never stop or slow the server: lines go through a bounded
//! queue to a writer thread; a full queue or a failed write (a closed pipe,
//! a full disk) drops the line and counts it in
//! `userhub_log_lines_dropped_total`.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

pub use crate::settings::LogFormat;

/// Lines waiting for the writer thread: enough for a burst, small enough
/// that a stalled reader costs a few megabytes at most.
const QUEUE_LINES: usize = 8192;

/// The name of the counter of lines that were not written.
pub const DROPPED_METRIC: &str = "userhub_log_lines_dropped_total";

/// Installs the global subscriber, with crates that log through `log`
/// (sqlx, actix) bridged in; a second call (as in tests) is a no-op.
/// Colour only on a terminal, and never with `NO_COLOR`. PostgreSQL's
/// notices (such as "relation already exists, skipping" at each start) are
/// left out unless the filter names sqlx itself.
pub fn init(filter: &str, format: LogFormat) {
    let mut filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    if !filter.to_string().contains("sqlx")
        && let Ok(directive) = "sqlx::postgres::notice=warn".parse()
    {
        filter = filter.add_directive(directive);
    }
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_target(false)
        // The default reports a failed write with `eprintln!`, which panics
        // when standard error is the same closed pipe.
        .log_internal_errors(false)
        .with_writer(QueuedStdout::global());
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Waits (up to a second) until the lines queued so far are written, so
/// that the last lines before an exit are not lost.
pub fn flush() {
    if let Some(queue) = QUEUE.get() {
        let (done, wait) = mpsc::sync_channel(1);
        if queue.sender.try_send(Job::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(Duration::from_secs(1));
        }
    }
}

enum Job {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

struct Queue {
    sender: SyncSender<Job>,
}

static QUEUE: OnceLock<Queue> = OnceLock::new();

/// A [`MakeWriter`] whose writers hand each line to the writer thread.
#[derive(Clone, Copy, Debug)]
pub struct QueuedStdout;

impl QueuedStdout {
    /// The writer, starting its thread at the first call.
    #[must_use]
    pub fn global() -> Self {
        QUEUE.get_or_init(|| {
            let (sender, receiver) = mpsc::sync_channel(QUEUE_LINES);
            let spawned = std::thread::Builder::new()
                .name("log-writer".into())
                .spawn(move || write_lines(&receiver, &mut std::io::stdout()));
            if spawned.is_err() {
                // Without the thread every line is dropped (and counted).
                dropped(1);
            }
            Queue { sender }
        });
        Self
    }
}

fn write_lines(receiver: &Receiver<Job>, out: &mut impl Write) {
    while let Ok(job) = receiver.recv() {
        match job {
            Job::Line(line) => {
                if out.write_all(&line).and_then(|()| out.flush()).is_err() {
                    dropped(1);
                }
            }
            Job::Flush(done) => {
                let _ = out.flush();
                let _ = done.try_send(());
            }
        }
    }
}

fn dropped(lines: u64) {
    metrics::counter!(DROPPED_METRIC).increment(lines);
}

/// One event's bytes, sent as one line when the formatter is done.
#[derive(Debug, Default)]
pub struct LineWriter {
    line: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.line);
        let Some(queue) = QUEUE.get() else {
            dropped(1);
            return;
        };
        match queue.sender.try_send(Job::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => dropped(1),
        }
    }
}

impl<'a> MakeWriter<'a> for QueuedStdout {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A writer whose reader has gone: every write fails.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn a_closed_output_drops_lines_and_the_writer_goes_on() {
        let (sender, receiver) = mpsc::sync_channel(4);
        let (done, wait) = mpsc::sync_channel(1);
        sender.send(Job::Line(b"one\n".to_vec())).unwrap();
        sender.send(Job::Line(b"two\n".to_vec())).unwrap();
        sender.send(Job::Flush(done)).unwrap();
        drop(sender);
        // Returns (rather than panicking) once the queue is closed.
        write_lines(&receiver, &mut Closed);
        assert!(wait.try_recv().is_ok(), "a flush is answered even so");
    }

    #[test]
    fn lines_reach_the_output_whole_and_in_order() {
        let (sender, receiver) = mpsc::sync_channel(4);
        sender.send(Job::Line(b"one\n".to_vec())).unwrap();
        sender.send(Job::Line(b"two\n".to_vec())).unwrap();
        drop(sender);
        let mut out = Vec::new();
        write_lines(&receiver, &mut out);
        assert_eq!(out, b"one\ntwo\n");
    }
}
