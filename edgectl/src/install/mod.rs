//! `edgectl install --ssh` and `uninstall --ssh`: the agent put on (or taken off) a running board over SSH,
//! k3sup-style. `arch.rs` says whether a binary runs on the host (ELF header against `uname -m`), `plan.rs` is
//! the pure list of what to send and run, `ssh.rs` the session that runs it. The command is `cmd/install.rs`.

pub mod arch;
pub mod plan;
pub mod ssh;
