//! Arguments of `edgectl config`: the contexts of the config file (`crate::config`), with the global `--server`,
//! `--token` and `--certificate-authority` as what `set-context` stores.

use clap::{Args, Subcommand};

#[derive(Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// List the contexts: CURRENT NAME SERVER.
    GetContexts,
    /// Make a context the current one: later commands talk to its server.
    UseContext { name: String },
    /// Create a context with --server URL, or set an existing one's server, --token or --certificate-authority
    /// (the current context stays).
    SetContext { name: String },
    /// Print the current context's name.
    CurrentContext,
}
