//! One module per subcommand (`apply` also holds `diff -f` and `delete -f`; `edit` holds `scale`, `set` and
//! `rollout restart`, the changes that touch only what they name).

pub mod apply;
pub mod boards;
pub mod config;
pub mod create;
pub mod credential;
pub mod delete;
pub mod deploy;
pub mod describe;
#[cfg(feature = "dev")]
pub mod dev;
pub mod edit;
pub mod events;
pub mod flash;
pub mod get;
pub mod get_watch;
pub mod install;
pub mod logs;
pub mod node;
pub mod rollout;
pub mod token;
pub mod top;
pub mod version;
