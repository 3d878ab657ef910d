//! `edgectl events [-n NS | -A] [--for workload/NAME|node/NAME|instance/ID] [-w] [-o json|yaml]`: recent
//! lifecycle events as kubectl lists them, `LAST SEEN TYPE OBJECT MESSAGE`, oldest first. `-w` lists, then
//! polls and prints each new event once (the controller keeps a bounded window of recent events, so what is
//! remembered to skip is only the last answer).

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Result;
use edge_api::EventView;
use time::OffsetDateTime;

use crate::cli::{EventsArgs, Output};
use crate::client::Client;
use crate::table::Table;

/// How often `-w` asks for new events.
const POLL: Duration = Duration::from_secs(1);

pub async fn run(client: &Client, ns: &str, args: &EventsArgs) -> Result<()> {
    let scope = if args.all_namespaces { None } else { Some(ns) };
    let events = client.events(scope, args.about.as_deref()).await?;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&events)?),
        Output::Yaml => print!("{}", crate::manifest::render::json(&serde_json::to_value(&events)?)),
        Output::Table if events.is_empty() && !args.watch => eprintln!("{}", none_found(scope)),
        Output::Table => print!("{}", events_table(&events, OffsetDateTime::now_utc(), scope.is_none()).render()),
    }
    if !args.watch {
        return Ok(());
    }
    let mut seen: HashSet<(String, u64, String)> = events.iter().map(key).collect();
    loop {
        tokio::time::sleep(POLL).await;
        let events = client.events(scope, args.about.as_deref()).await?;
        let new: Vec<EventView> = events.iter().filter(|e| !seen.contains(&key(e))).cloned().collect();
        seen = events.iter().map(key).collect();
        if new.is_empty() {
            continue;
        }
        match args.output {
            Output::Json => new.iter().try_for_each(|e| serde_json::to_string(e).map(|j| println!("{j}")))?,
            Output::Yaml => print!("{}", crate::manifest::render::json(&serde_json::to_value(&new)?)),
            Output::Table => {
                let table = events_table(&new, OffsetDateTime::now_utc(), scope.is_none()).render();
                table.lines().skip(1).for_each(|l| println!("{l}"));
            }
        }
    }
}

/// What identifies an event: its node, its number there, and when it happened (a new agent store numbers
/// from 1 again).
fn key(e: &EventView) -> (String, u64, String) {
    (e.node.clone(), e.seq, e.at.clone())
}

fn none_found(scope: Option<&str>) -> String {
    match scope {
        Some(ns) => format!("No events found in {ns} namespace."),
        None => "No events found.".to_string(),
    }
}

/// kubectl's columns; with every namespace, NAMESPACE first (`-` for a node's own events).
fn events_table(events: &[EventView], now: OffsetDateTime, all: bool) -> Table {
    let mut header = vec!["LAST SEEN".to_string(), "TYPE".into(), "OBJECT".into(), "MESSAGE".into()];
    if all {
        header.insert(0, "NAMESPACE".into());
    }
    let mut t = Table::with_header(header);
    for e in events {
        let mut row = vec![crate::age::since(&e.at, now), e.kind.clone(), e.object.clone(), e.message.clone()];
        if all {
            row.insert(0, e.namespace.clone().unwrap_or_else(|| "-".into()));
        }
        t.push(row);
    }
    t
}

#[cfg(test)]
mod tests {
    use time::format_description::well_known::Rfc3339;

    use super::*;

    fn event(at: &str, kind: &str, object: &str, message: &str, ns: Option<&str>) -> EventView {
        EventView {
            at: at.into(),
            kind: kind.into(),
            object: object.into(),
            node: "dev-1".into(),
            namespace: ns.map(str::to_string),
            workload: ns.map(|_| "tick".to_string()),
            message: message.into(),
            seq: 1,
        }
    }

    #[test]
    fn events_read_as_kubectl_lists_them() {
        let now = OffsetDateTime::parse("2025-06-01T12:03:12Z", &Rfc3339).unwrap();
        let events = [
            event("2025-06-01T12:00:00.000Z", "Normal", "instance/tick-x7k2p", "Started", Some("default")),
            event("2025-06-01T12:03:10.500Z", "Warning", "instance/tick-x7k2p", "Exited with code 1", Some("default")),
            event("2025-06-01T12:03:11.000Z", "Warning", "node/dev-1", "Rejected: unsigned spec", None),
        ];
        assert_eq!(
            events_table(&events, now, false).render(),
            "LAST SEEN   TYPE      OBJECT                MESSAGE\n\
             3m12s       Normal    instance/tick-x7k2p   Started\n\
             1s          Warning   instance/tick-x7k2p   Exited with code 1\n\
             1s          Warning   node/dev-1            Rejected: unsigned spec\n"
        );
        let all = events_table(&events, now, true).render();
        assert!(all.starts_with("NAMESPACE   LAST SEEN"), "{all}");
        assert!(all.lines().nth(3).unwrap().starts_with("-           1s"), "{all}");
        assert_eq!(none_found(Some("default")), "No events found in default namespace.");
    }
}
