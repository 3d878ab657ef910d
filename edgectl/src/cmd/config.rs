//! `edgectl config get-contexts|use-context NAME|set-context NAME --server URL|current-context`: the contexts of
//! the config file (`config.rs`), as kubectl's `config` subcommands show and change them, with kubectl's words
//! (`Switched to context "dev".`).

use anyhow::{anyhow, bail, Result};

use crate::cli::ConfigCommand;
use crate::config::{self, Config};
use crate::table::Table;

/// `server` and `token`: the global `--server` and `--token` flags, which `set-context` takes as the context's.
pub fn run(command: ConfigCommand, server: Option<&str>, token: Option<&str>, ca: Option<&str>) -> Result<()> {
    let path = config::path().ok_or_else(|| anyhow!("no config file: neither $XDG_CONFIG_HOME nor $HOME is set"))?;
    let loaded = config::load(&path)?;
    let had_file = loaded.is_some();
    let mut cfg = loaded.unwrap_or_default();
    match command {
        ConfigCommand::GetContexts => {
            if cfg.contexts.is_empty() {
                let why = if had_file { "has none" } else { "does not exist" };
                eprintln!(
                    "No contexts: {} {why} (`edgectl dev` writes one; `edgectl config set-context NAME --server URL` \
                     adds one)",
                    path.display()
                );
            } else {
                print!("{}", contexts_table(&cfg).render());
            }
        }
        ConfigCommand::CurrentContext => match &cfg.current {
            Some(c) => println!("{c}"),
            None => bail!("current-context is not set in {} (edgectl config use-context NAME)", path.display()),
        },
        ConfigCommand::UseContext { name } => {
            cfg.use_context(&name).map_err(|e| anyhow!("{}: {e}", path.display()))?;
            config::save(&path, &cfg)?;
            println!("Switched to context {name:?}.");
        }
        ConfigCommand::SetContext { name } => {
            let certificate_authority = ca;
            check_name(&name)?;
            let created = match server {
                Some(server) if server.trim().is_empty() => bail!("--server is empty (try --server http://HOST:7700)"),
                Some(server) => cfg.set_context(&name, &crate::client::base_url(server)),
                None if cfg.context(&name).is_some() && (token.is_some() || certificate_authority.is_some()) => false,
                None => bail!("set-context {name} needs --server URL"),
            };
            // A fingerprint is kept as given, a CA file by its absolute path (checked now, read at each use).
            let ca = match certificate_authority {
                Some(c) => {
                    edge_tls::pin_from(c).map_err(|e| anyhow!("--certificate-authority: {e}"))?;
                    match std::fs::canonicalize(c) {
                        Ok(path) => Some(path.display().to_string()),
                        Err(_) => Some(c.trim().to_string()),
                    }
                }
                None => None,
            };
            if let Some(c) = cfg.contexts.iter_mut().find(|c| c.name == name) {
                if let Some(t) = token {
                    c.token = Some(t.to_string());
                }
                if ca.is_some() {
                    c.certificate_authority = ca;
                }
            }
            config::save(&path, &cfg)?;
            println!("Context {name:?} {}.", if created { "created" } else { "modified" });
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("context name {name:?} must be non-empty, without spaces");
    }
    Ok(())
}

/// kubectl's `get-contexts` table: `*` marks the current one.
fn contexts_table(cfg: &Config) -> Table {
    let mut t = Table::new(["CURRENT", "NAME", "SERVER"]);
    for c in &cfg.contexts {
        let current = if cfg.current.as_deref() == Some(c.name.as_str()) { "*" } else { "" };
        t.row([current.to_string(), c.name.clone(), c.server.clone()]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_contexts_marks_the_current_one() {
        let mut cfg = Config::default();
        cfg.set_context("dev", "http://127.0.0.1:7700");
        cfg.set_context("pi-lab", "http://10.0.0.5:7700");
        cfg.use_context("dev").unwrap();
        assert_eq!(
            contexts_table(&cfg).render(),
            "CURRENT   NAME     SERVER\n\
             *         dev      http://127.0.0.1:7700\n          \
             pi-lab   http://10.0.0.5:7700\n"
        );
    }

    #[test]
    fn names_are_one_word() {
        assert!(check_name("pi-lab").is_ok());
        assert!(check_name("").is_err() && check_name("a b").is_err());
    }
}
