//! The getting-started LLM scenario with rate limits shared by the whole pool: at most 40
//! calls and 12,000 tokens per second. Each call reserves its estimated tokens, and reports
//! what the (simulated) response really used, so unused tokens go back to the budget.
//!
//! ```text
//! cargo run --release --example rate_limited
//! ```

use std::time::{Duration, Instant};

use concurry::LimitError;
use concurry::prelude::*;

/// What the model's API can fail with.
#[derive(Debug)]
pub enum ApiError {
    /// The limits refused the request (it could never fit, or a key is unknown).
    Limit(LimitError),
}

impl std::error::Error for ApiError {}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Limit(e) => write!(f, "rate limits: {e}"),
        }
    }
}

impl From<LimitError> for ApiError {
    fn from(e: LimitError) -> Self {
        ApiError::Limit(e)
    }
}

/// A reply from the (simulated) API.
struct Reply {
    text: String,
    tokens_used: u64,
}

/// Pretends to call the model: a 20 ms round trip, and a token count that depends on the
/// prompt (between 200 and 800, below the 1,000 we reserve).
fn api_call(model: &str, prompt: &str) -> Reply {
    std::thread::sleep(Duration::from_millis(20));
    let tokens_used = 200 + (prompt.len() as u64 * 37) % 600;
    Reply {
        text: format!("[{model}] answer to {prompt:?}"),
        tokens_used,
    }
}

/// A client for the model; the pool's limits are shared by all of its workers.
#[derive(Debug)]
pub struct Llm {
    model: String,
}

#[concurry::worker]
impl Llm {
    /// Runs once in every worker.
    pub fn new(model: String) -> Self {
        Llm { model }
    }

    /// One call: `call_count` was charged before this ran; reserve tokens, then report the
    /// real usage.
    pub fn call(&self, prompt: String) -> Result<(String, u64), ApiError> {
        let mut acq = concurry::limits().acquire(&[("tokens", 1000)])?;
        let reply = api_call(&self.model, &prompt);
        acq.update(&[("tokens", reply.tokens_used)])?; // refunds what was not used
        Ok((reply.text, reply.tokens_used))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prompts: Vec<String> = (0..120).map(|i| format!("prompt #{i}")).collect();
    let limits = LimitSet::new([
        CallLimit::per_second(40),
        RateLimit::per_second("tokens", 12_000).algorithm(RateAlgorithm::TokenBucket),
    ])?;
    let llm = Llm::options()
        .mode(Mode::Thread)
        .max_workers(20)
        .limits(&limits)
        .init("gpt-4o-mini".to_string())?;

    let start = Instant::now();
    let futures: Vec<_> = prompts.into_iter().map(|p| llm.call(p)).collect();
    let answers = concurry::gather(futures).wait()?;
    let elapsed = start.elapsed();
    llm.stop()?;

    let tokens: u64 = answers.iter().map(|(_, t)| t).sum();
    println!("first answer: {}", answers[0].0);
    println!(
        "{} calls, {tokens} tokens in {elapsed:.2?}: {:.0} calls/s, {:.0} tokens/s",
        answers.len(),
        answers.len() as f64 / elapsed.as_secs_f64(),
        tokens as f64 / elapsed.as_secs_f64(),
    );
    for s in limits.stats() {
        println!(
            "  {:<10} capacity {:>6}  used {:>6}  available {:>6}",
            s.key, s.capacity, s.used, s.available
        );
    }
    Ok(())
}
