//! `astroboids`: the command-line entry point. Thin: parses arguments and hands off to a
//! command module.

mod admin_cmd;
mod cli;
mod client_cmd;
mod cluster_cmd;
mod loadgen_cmd;
mod logging;
mod replay_cmd;
mod script_cmd;
mod sectors_cmd;
mod serve_cmd;
mod sim_cmd;
mod stop_signals;
mod universe_config;

use anyhow::Context;
use clap::Parser;

/// mimalloc reuses freed memory across threads without returning it to the kernel: glibc's
/// allocator gave back the script memories a checkpoint freed and then spent half the next
/// capture faulting fresh pages in (measured with perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    // Server processes log through `tracing`; the other commands print as they always did.
    let log = server_log_args(&cli.command);
    if let Some(log) = log
        && let Err(e) = logging::init(log)
    {
        eprintln!("error: {}", error_chain(&e));
        return std::process::ExitCode::FAILURE;
    }
    let json_log = log.is_some_and(|l| l.log_format == cli::LogFormat::Json);
    let result = match cli.command {
        cli::Command::Sim(args) => sim_cmd::run(&args),
        cli::Command::Script(cli::ScriptCommand::Build(args)) => script_cmd::build(&args),
        cli::Command::Script(cli::ScriptCommand::Check(args)) => script_cmd::check(&args),
        cli::Command::Replay(command) => replay_cmd::run(&command),
        cli::Command::Serve(args) => serve_cmd::run(&args),
        cli::Command::Client(args) => client_cmd::run(&args),
        cli::Command::Admin(args) => admin_cmd::run(&args),
        cli::Command::Watch(args) => client_cmd::watch(&args),
        cli::Command::Play(args) => client_cmd::play(&args),
        cli::Command::Loadgen(args) => loadgen_cmd::run_loadgen(&args),
        cli::Command::Sectors(command) => sectors_cmd::run(&command),
        cli::Command::Cluster(command) => cluster_cmd::run(&command),
        cli::Command::Shard(args) => cluster_cmd::roles::shard(&args),
        cli::Command::Leader(args) => cluster_cmd::roles::leader(&args),
        cli::Command::Gateway(args) => cluster_cmd::roles::gateway(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if json_log => {
            // Every line of a JSON log is an object, the last one too.
            tracing::error!(error = %error_chain(&e), "the process failed");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The logging flags of a server process's command; `None` for the other commands.
fn server_log_args(command: &cli::Command) -> Option<&cli::LogArgs> {
    match command {
        cli::Command::Serve(args) => Some(&args.log),
        cli::Command::Shard(args) => Some(&args.log),
        cli::Command::Leader(args) => Some(&args.log),
        cli::Command::Gateway(args) => Some(&args.log),
        cli::Command::Cluster(cli::cluster::ClusterCommand::Up(args)) => Some(&args.log),
        _ => None,
    }
}

/// The error and its causes joined with ": ", like `{:#}`, except that a cause whose text the
/// message already ends with is left out. Library errors often include their source in their
/// own message (thiserror's `"script rejected: {0}"` with `#[from]`), and printing the chain
/// as is would repeat the reason.
fn error_chain(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.is_empty() {
            message = text;
        } else if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Like a thiserror `#[error("script rejected: {0}")] Rejected(#[from] Inner)`.
    #[derive(Debug)]
    struct Outer(Inner);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "script rejected: {}", self.0)
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[derive(Debug)]
    struct Inner;

    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("import env.seed is not allowed")
        }
    }

    impl std::error::Error for Inner {}

    #[test]
    fn a_reason_the_message_already_holds_is_printed_once() {
        let e = anyhow::Error::from(Outer(Inner)).context("bot.wasm");
        assert_eq!(
            error_chain(&e),
            "bot.wasm: script rejected: import env.seed is not allowed"
        );
    }

    #[test]
    fn other_causes_are_kept() {
        let e = anyhow::Error::from(Inner).context("bot.wasm");
        assert_eq!(error_chain(&e), "bot.wasm: import env.seed is not allowed");
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::from(io).context("cannot read script a.wasm");
        assert_eq!(error_chain(&e), "cannot read script a.wasm: no such file");
    }
}
