//! A flaky (simulated) LLM API made reliable with retries.
//!
//! The API fails 30% of calls with a transient error and returns an empty answer 10% of the
//! time. `retry_on` retries only the transient errors, `retry_until` rejects empty answers,
//! and the wait between attempts never occupies a worker.
//!
//! ```text
//! cargo run --release --example retry
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concurry::RetryConfig;
use concurry::prelude::*;

/// What the API can fail with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// Rate limited, timed out, ...: worth another try.
    Transient,
    /// The request itself is wrong: retrying cannot help.
    BadRequest,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// A client of the flaky API; `attempts` counts calls per prompt for the report.
#[derive(Debug)]
pub struct Llm {
    attempts: Arc<Mutex<BTreeMap<u32, u32>>>,
    seed: Arc<AtomicU64>,
}

#[concurry::worker]
impl Llm {
    /// Shares the attempt counter and the random seed with the other workers.
    pub fn new(attempts: Arc<Mutex<BTreeMap<u32, u32>>>, seed: Arc<AtomicU64>) -> Self {
        Llm { attempts, seed }
    }

    /// One call of the API.
    pub fn complete(&self, id: u32, prompt: String) -> Result<String, ApiError> {
        *self.attempts.lock().unwrap().entry(id).or_insert(0) += 1;
        std::thread::sleep(Duration::from_millis(5)); // the network
        if prompt.is_empty() {
            return Err(ApiError::BadRequest);
        }
        match self.roll() {
            0..30 => Err(ApiError::Transient),
            30..40 => Ok(String::new()),
            _ => Ok(format!("answer to {prompt:?}")),
        }
    }

    /// A number in 0..100 from a shared linear congruential generator (deterministic runs).
    fn roll(&self) -> u64 {
        let next = |x: u64| {
            x.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407)
        };
        let x = self
            .seed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |x| Some(next(x)))
            .unwrap();
        (next(x) >> 33) % 100
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let attempts = Arc::new(Mutex::new(BTreeMap::new()));
    let retry = RetryConfig::attempts(7)
        .wait(Duration::from_millis(10))
        .max_wait(Duration::from_millis(200))
        .jitter(0.5)
        .retry_on(|failure| failure.downcast_ref::<ApiError>() == Some(&ApiError::Transient))
        .retry_until(|answer: &String| !answer.is_empty());
    let llm = Llm::options()
        .mode(Mode::Thread)
        .max_workers(8)
        .retry(retry)
        .init(attempts.clone(), Arc::new(AtomicU64::new(42)))?;

    let prompts: Vec<String> = (0..20)
        .map(|i| {
            if i == 7 {
                String::new()
            } else {
                format!("prompt #{i}")
            }
        })
        .collect();
    let futures: Vec<_> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| llm.complete(i as u32, p))
        .collect();
    for (i, f) in futures.into_iter().enumerate() {
        let outcome = match f.result() {
            Ok(answer) => answer,
            Err(concurry::Error::Method(e)) => format!("failed for good: {e} (not retried)"),
            Err(e) => format!("gave up: {e}"),
        };
        let n = attempts.lock().unwrap()[&(i as u32)];
        println!("call {i:2}: {n} attempt(s) -> {outcome}");
    }
    llm.stop()?;
    Ok(())
}
