//! The getting-started scenario: a batch of LLM calls, sequential vs on a pool of workers.
//!
//! The "API call" is simulated (50 ms of waiting, as a network round trip would be), so this
//! runs anywhere with no key and no server:
//!
//! ```text
//! cargo run --release --example quickstart
//! ```

use std::time::{Duration, Instant};

use concurry::prelude::*;

/// A client for a (simulated) LLM API: its configuration is the worker's state.
#[derive(Debug)]
pub struct Llm {
    model: String,
    temperature: f32,
}

#[concurry::worker]
impl Llm {
    /// Runs once in every worker of the pool.
    pub fn new(model: String, temperature: f32) -> Self {
        Llm { model, temperature }
    }

    /// Calls the model with one prompt.
    pub fn call_llm(&self, prompt: String) -> String {
        std::thread::sleep(Duration::from_millis(50)); // the network round trip
        format!(
            "[{} t={}] answer to {prompt:?}",
            self.model, self.temperature
        )
    }
}

fn main() -> Result<(), concurry::Error> {
    let prompts: Vec<String> = (0..100).map(|i| format!("prompt #{i}")).collect();

    // Sequential: the struct is plain Rust, so it can be used directly.
    let llm = Llm::new("gpt-4o-mini".into(), 0.1);
    let start = Instant::now();
    let sequential: Vec<String> = prompts.iter().map(|p| llm.call_llm(p.clone())).collect();
    let sequential_time = start.elapsed();

    // Pooled: 50 workers on threads, same code.
    let pool = Llm::options()
        .mode(Mode::Thread)
        .max_workers(50)
        .init("gpt-4o-mini".into(), 0.1)?;
    let start = Instant::now();
    let futures: Vec<_> = prompts.iter().map(|p| pool.call_llm(p.clone())).collect();
    // A bar on stderr while the calls come in (nothing is drawn when stderr is not a terminal).
    let pooled = concurry::gather(futures).progress("LLM calls").wait()?;
    let pooled_time = start.elapsed();
    pool.stop()?;

    assert_eq!(sequential, pooled);
    println!("{}", pooled[0]);
    println!(
        "sequential: {} calls in {:.2} s",
        prompts.len(),
        sequential_time.as_secs_f64()
    );
    println!(
        "pooled:     {} calls in {:.2} s ({:.0}x faster)",
        prompts.len(),
        pooled_time.as_secs_f64(),
        sequential_time.as_secs_f64() / pooled_time.as_secs_f64()
    );
    Ok(())
}
