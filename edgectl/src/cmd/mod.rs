//! One module per subcommand.

pub mod create;
pub mod delete;
pub mod deploy;
pub mod describe;
pub mod dev;
pub mod get;
pub mod logs;
pub mod node;
pub mod rollout;
