//! `concurry`: look at a concurry cluster from a shell.
//!
//! One module per command under `cmd/`; `cli.rs` holds the arguments (clap derive),
//! `connect.rs` turns the global options into a connection, `exit.rs` the exit codes
//! scripts can trust, `table.rs` the human-readable tables.

mod cli;
mod cmd;
mod connect;
mod dashboard;
mod exit;
mod table;
mod time;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Usage errors exit with 2 (clap's code), `--help` and `--version` with 0.
    let cli = cli::Cli::parse();
    let mut out = std::io::stdout().lock();
    match cmd::run(&cli, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("concurry: {e}");
            e.code()
        }
    }
}
