//! One module per command; [`run`] dispatches.

pub(crate) mod node;
pub(crate) mod nodes;

use std::io::Write;

use crate::cli::{Cli, Command};
use crate::exit::Failure;

/// Runs the command `cli` names, writing its output to `out`.
pub(crate) fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), Failure> {
    match &cli.command {
        Command::Nodes(args) => nodes::run(&cli.global, args, out),
        Command::Node(args) => node::run(&cli.global, args, out),
        Command::Dashboard(args) => crate::dashboard::run(&cli.global, args, out),
    }
}
