//! Crash isolation with process mode: a document parser that sometimes crashes its process
//! (a stand-in for a native library that segfaults on bad input), or hangs.
//!
//! Each worker is a child process running this same binary; `main` needs no extra line.
//! A crash fails only the calls on that child (`Error::WorkerLost`, retried here because the
//! policy says so) and the child is replaced; a hang past `call_timeout` is `Error::Timeout`.
//!
//! ```text
//! cargo run --release --example process
//! ```

use std::time::{Duration, Instant};

use concurry::RetryConfig;
use concurry::prelude::*;

/// Parses documents; its state (a count of documents seen) lives in its child process.
#[derive(Debug, Default)]
pub struct Parser {
    seen: u64,
}

#[concurry::worker(remote)]
impl Parser {
    /// A parser with nothing seen yet (each new child starts here).
    pub fn new() -> Self {
        Parser::default()
    }

    /// Counts the words of a document. `"crash"` aborts the process, like a segfault would;
    /// `"hang"` never returns.
    pub fn parse(&mut self, doc: String) -> Result<(u32, usize), String> {
        self.seen += 1;
        match doc.as_str() {
            "crash" => std::process::abort(),
            "hang" => loop {
                std::thread::sleep(Duration::from_secs(1));
            },
            "" => Err("empty document".to_string()),
            _ => Ok((std::process::id(), doc.split_whitespace().count())),
        }
    }

    /// Documents this child has parsed since it started.
    pub fn seen(&self) -> u64 {
        self.seen
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let parser = Parser::options()
        .mode(Mode::Process)
        .max_workers(2)
        .call_timeout(Duration::from_secs(2))
        .init()?;

    let docs = [
        "the quick brown fox",
        "jumps over",
        "",
        "the lazy dog",
        "a b c d e",
    ];
    let started = Instant::now();
    for (doc, answer) in docs.iter().zip(docs.map(|d| parser.parse(d))) {
        match answer.result() {
            Ok((pid, words)) => println!("{doc:?}: {words} words (child {pid})"),
            Err(e) => println!("{doc:?}: {e}"),
        }
    }

    // A crash: the call fails with `WorkerLost`, and a fresh child serves the next calls.
    match parser.parse("crash").result() {
        Err(Error::WorkerLost { message }) => println!("\"crash\": worker lost ({message})"),
        other => println!("\"crash\": {other:?}"),
    }
    // A hang: `Timeout` after `call_timeout`, and that child is replaced too.
    match parser.parse("hang").result() {
        Err(Error::Timeout) => println!("\"hang\": timed out after 2 s, child replaced"),
        other => println!("\"hang\": {other:?}"),
    }
    let (pid, words) = parser.parse("still serving").result()?;
    println!("\"still serving\": {words} words (child {pid})");
    parser.stop()?;

    // With `retry_on_worker_lost`, a call whose child died is sent again, to a new child.
    let flaky = Parser::options()
        .mode(Mode::Process)
        .max_workers(1)
        .retry(
            RetryConfig::attempts(3)
                .wait(Duration::from_millis(10))
                .retry_on_worker_lost(true),
        )
        .init()?;
    match flaky.parse("crash").result() {
        Err(Error::RetriesExhausted { attempts, .. }) => {
            println!(
                "\"crash\" with retries: gave up after {attempts} attempts, each on a new child"
            )
        }
        other => println!("\"crash\" with retries: {other:?}"),
    }
    println!(
        "the last child has seen {} documents; done in {:.1?}",
        flaky.seen().result()?,
        started.elapsed()
    );
    flaky.stop()?;
    Ok(())
}
