//! `astroboids`: the command-line entry point. Thin: parses arguments and hands off to a
//! command module.

mod cli;
mod script_cmd;
mod sim_cmd;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Sim(args) => sim_cmd::run(&args),
        cli::Command::Script(cli::ScriptCommand::Build(args)) => script_cmd::build(&args),
        cli::Command::Script(cli::ScriptCommand::Check(args)) => script_cmd::check(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
