//! `astroboids`: the command-line entry point. Thin: parses arguments and hands off to a
//! command module.

mod admin_cmd;
mod cli;
mod client_cmd;
mod loadgen_cmd;
mod replay_cmd;
mod script_cmd;
mod sectors_cmd;
mod serve_cmd;
mod sim_cmd;

use anyhow::Context;
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Sim(args) => sim_cmd::run(&args),
        cli::Command::Script(cli::ScriptCommand::Build(args)) => script_cmd::build(&args),
        cli::Command::Script(cli::ScriptCommand::Check(args)) => script_cmd::check(&args),
        cli::Command::Replay(command) => replay_cmd::run(&command),
        cli::Command::Serve(args) => serve_cmd::run(&args),
        cli::Command::Client(args) => client_cmd::run(&args),
        cli::Command::Admin(args) => admin_cmd::run(&args),
        cli::Command::Watch(args) => client_cmd::watch(&args),
        cli::Command::Loadgen(args) => loadgen_cmd::run_loadgen(&args),
        cli::Command::Sectors(command) => sectors_cmd::run(&command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--threads`, or every core.
fn thread_count(requested: Option<u32>) -> usize {
    requested
        .map(|t| t as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The rayon pool the simulation's parallel stages (and its script workers) run on.
fn thread_pool(threads: usize) -> anyhow::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start the worker threads")
}
