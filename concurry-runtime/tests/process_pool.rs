//! `Mode::Process` on pools: until `#[worker(remote)]` exists, every `#[worker]` type is
//! in-process only, and `init` in process mode says how to fix it.

#![allow(missing_docs)]

use concurry::{Error, Mode};

#[derive(Debug, Default)]
pub struct Local;

#[concurry::worker]
impl Local {
    pub fn new() -> Self {
        Local
    }

    pub fn ping(&self) -> u8 {
        1
    }
}

#[test]
fn process_mode_parses_by_name() {
    assert_eq!("process".parse::<Mode>().unwrap(), Mode::Process);
    assert_eq!(Mode::Process.to_string(), "process");
    assert!(
        "fibers"
            .parse::<Mode>()
            .unwrap_err()
            .to_string()
            .contains("\"process\"")
    );
}

#[test]
fn a_worker_that_did_not_opt_in_is_a_config_error_in_process_mode() {
    match Local::options().mode(Mode::Process).init() {
        Err(Error::Config(e)) => {
            assert_eq!(e.option(), "mode");
            assert_eq!(e.value(), "process");
            assert!(e.to_string().contains("`#[worker(remote)]`"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // Also for on-demand pools.
    assert!(matches!(
        Local::options().mode(Mode::Process).on_demand(true).init(),
        Err(Error::Config(_))
    ));
}
