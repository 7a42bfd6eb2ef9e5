//! Arguments of the script commands (`script build|sdk|check`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum ScriptCommand {
    /// Compile a TypeScript (AssemblyScript) ship script with the SDK, then check the result.
    Build(BuildArgs),
    /// Validate a WebAssembly ship script and print its imports, exports and limits.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The script, e.g. assets/scripts/miner.ts.
    pub file: PathBuf,
    /// Where to write the module (default: next to the script, with a .wasm extension).
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub sdk: SdkArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SdkArgs {
    /// The SDK directory (default: $ASTROBOIDS_SDK, else scripting/sdk of this checkout).
    #[arg(long, env = "ASTROBOIDS_SDK")]
    pub sdk: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The module, e.g. assets/scripts/miner.wasm, or WebAssembly text (.wat).
    pub file: PathBuf,
    /// Universe configuration whose script limits apply (default: the embedded one).
    #[arg(long)]
    pub config: Option<PathBuf>,
}
