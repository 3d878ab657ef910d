//! One module per subcommand.

pub mod create;
pub mod delete;
pub mod deploy;
pub mod describe;
#[cfg(feature = "dev")]
pub mod dev;
pub mod get;
pub mod logs;
pub mod node;
pub mod rollout;
