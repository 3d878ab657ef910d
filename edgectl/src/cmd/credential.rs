//! API credentials: `edgectl create credential NAME [--namespace NS] [--role admin|edit|view] [--ttl D]`,
//! `get credentials`, `delete credential NAME`, and the audit trail, `edgectl events --audit`.
//!
//! `create` prints the bearer token alone on its last line (scripts take `| tail -n 1`); the controller keeps
//! only its hash, so it is shown this once.

use std::time::Duration;

use anyhow::{anyhow, Result};
use edge_api::{AuditView, CredentialCreated, CredentialRequest, CredentialView};
use time::OffsetDateTime;

use crate::age;
use crate::cli::{GetOutput, Output};
use crate::client::Client;
use crate::table::Table;

pub async fn create(
    client: &Client,
    name: &str,
    namespace: Option<&str>,
    role: &str,
    ttl: Option<Duration>,
) -> Result<()> {
    let req = CredentialRequest {
        name: name.to_string(),
        role: role.to_string(),
        namespace: namespace.map(str::to_string),
        ttl_ms: ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
    };
    let created = client.create_credential(&req).await?;
    print!("{}", created_text(&created));
    Ok(())
}

fn created_text(c: &CredentialCreated) -> String {
    let v = &c.view;
    let scope = v.namespace.as_ref().map_or_else(|| "every namespace".to_string(), |ns| format!("namespace {ns}"));
    let expires = v.expires.as_ref().map_or_else(|| "never expires".to_string(), |e| format!("expires {e}"));
    format!(
        "credential/{} created: role {}, {scope}, {expires}\n\
         Its bearer token, shown this once (EDGE_TOKEN=… or `edgectl config set-context NAME --token …`):\n{}\n",
        v.name, v.role, c.token
    )
}

pub async fn list(client: &Client, name: Option<&str>, output: GetOutput) -> Result<()> {
    let mut creds = client.credentials().await?;
    if let Some(name) = name {
        creds.retain(|c| c.name == name);
        if creds.is_empty() {
            return Err(anyhow!("credential {name} not found"));
        }
    }
    match output {
        GetOutput::Json => println!("{}", serde_json::to_string_pretty(&creds)?),
        GetOutput::Yaml => print!("{}", crate::manifest::render::json(&serde_json::to_value(&creds)?)),
        GetOutput::Name => creds.iter().for_each(|c| println!("credential/{}", c.name)),
        GetOutput::Table | GetOutput::Wide => print!("{}", table(&creds, OffsetDateTime::now_utc()).render()),
    }
    Ok(())
}

fn table(creds: &[CredentialView], now: OffsetDateTime) -> Table {
    let mut t = Table::new(["NAME", "ROLE", "NAMESPACE", "AGE", "EXPIRES", "LAST USED"]);
    for c in creds {
        t.row([
            c.name.clone(),
            c.role.clone(),
            c.namespace.clone().unwrap_or_else(|| "*".into()),
            age::since(&c.created, now),
            c.expires.as_deref().map_or_else(|| "never".into(), |e| age::until(e, now)),
            c.last_used.as_deref().map_or_else(|| "-".into(), |u| format!("{} ago", age::since(u, now))),
        ]);
    }
    t
}

pub async fn delete(client: &Client, name: &str) -> Result<()> {
    client.delete_credential(name).await?;
    println!("credential/{name} deleted");
    Ok(())
}

/// `edgectl events --audit`: WHEN WHO STATUS WHAT [WHY], oldest first.
pub async fn audit(client: &Client, output: Output) -> Result<()> {
    let trail = client.audit().await?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&trail)?),
        Output::Yaml => print!("{}", crate::manifest::render::json(&serde_json::to_value(&trail)?)),
        Output::Table if trail.is_empty() => eprintln!("No recorded API changes."),
        Output::Table => print!("{}", audit_table(&trail, OffsetDateTime::now_utc()).render()),
    }
    Ok(())
}

fn audit_table(trail: &[AuditView], now: OffsetDateTime) -> Table {
    let mut t = Table::new(["LAST SEEN", "WHO", "STATUS", "WHAT"]);
    for a in trail {
        let what = match &a.reason {
            Some(why) => format!("{} ({why})", a.what),
            None => a.what.clone(),
        };
        t.row([age::since(&a.at, now), a.who.clone(), a.status.to_string(), what]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_alone_on_the_last_line() {
        let c = CredentialCreated {
            token: "ecr_abc".into(),
            view: CredentialView {
                name: "ci".into(),
                role: "view".into(),
                namespace: None,
                created: "2026-12-02T10:00:00.000Z".into(),
                expires: None,
                expired: false,
                last_used: None,
            },
        };
        let text = created_text(&c);
        assert_eq!(text.lines().last(), Some("ecr_abc"));
        assert!(text.starts_with("credential/ci created: role view, every namespace, never expires"));
    }
}
