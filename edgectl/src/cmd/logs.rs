//! `edgectl logs NAME [-f] [--tail N] [--since 5m] [--timestamps]`: a workload's lines (every instance's, each
//! prefixed with `[INSTANCE]`), or one instance's (bare, as `kubectl logs POD` prints them). NAME is a workload
//! or an instance id: an id that names no workload is looked up among the namespace's instances, and one that has
//! left its workload (`tick-x7k2p` of an older revision) is found through its workload's name prefix, since its
//! lines stay in the workload's log.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{anyhow, Result};
use edge_api::LogLineView;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cli::LogsArgs;
use crate::client::Client;

/// What to print: whose lines, and which.
struct Filter {
    workload: String,
    /// Only this instance's lines (and without the `[INSTANCE]` prefix).
    instance: Option<String>,
    /// Only lines written at or after this instant.
    since: Option<OffsetDateTime>,
    timestamps: bool,
}

impl Filter {
    fn keeps(&self, l: &LogLineView) -> bool {
        self.instance.as_ref().is_none_or(|i| *i == l.instance)
            && self.since.is_none_or(|s| OffsetDateTime::parse(&l.at, &Rfc3339).is_ok_and(|at| at >= s))
    }

    fn render(&self, l: &LogLineView) -> String {
        let mut out = String::new();
        if self.timestamps {
            // The controller writes every timestamp with three fractional digits: the lines align as they are.
            out.push_str(&l.at);
            out.push(' ');
        }
        if self.instance.is_none() {
            out.push_str(&format!("[{}] ", l.instance));
        }
        out.push_str(&l.line);
        out
    }
}

pub async fn run(client: &Client, ns: &str, args: &LogsArgs) -> Result<()> {
    let mut filter = resolve(client, ns, &args.name).await?;
    filter.since = args.since.map(|d| OffsetDateTime::now_utc() - d);
    filter.timestamps = args.timestamps;
    let mut cursor = 0;
    // What is already kept first: every page of it, then only the last --tail lines of what passes.
    let mut kept: VecDeque<String> = VecDeque::new();
    loop {
        let page = client.logs(ns, &filter.workload, cursor).await?;
        if page.lines.is_empty() {
            break;
        }
        cursor = page.next;
        for l in page.lines.iter().filter(|l| filter.keeps(l)) {
            if args.tail == Some(0) {
                break;
            }
            if args.tail.is_some_and(|n| kept.len() >= n) {
                kept.pop_front();
            }
            match args.tail {
                Some(_) => kept.push_back(filter.render(l)),
                None => println!("{}", filter.render(l)),
            }
        }
    }
    for line in kept {
        println!("{line}");
    }
    if !args.follow {
        return Ok(());
    }
    loop {
        let page = client.logs(ns, &filter.workload, cursor).await?;
        cursor = page.next;
        for l in page.lines.iter().filter(|l| filter.keeps(l)) {
            println!("{}", filter.render(l));
        }
        if page.lines.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Whose lines `name` asks for.
async fn resolve(client: &Client, ns: &str, name: &str) -> Result<Filter> {
    let filter = |workload: &str, instance: Option<&str>| Filter {
        workload: workload.to_string(),
        instance: instance.map(str::to_string),
        since: None,
        timestamps: false,
    };
    if let Some(w) = name.strip_prefix("workload/").or_else(|| name.strip_prefix("wl/")) {
        client.workload(ns, w).await?;
        return Ok(filter(w, None));
    }
    let id = name.strip_prefix("instance/").or_else(|| name.strip_prefix("pod/"));
    if id.is_none() && client.find_workload(ns, name).await?.is_some() {
        return Ok(filter(name, None));
    }
    let id = id.unwrap_or(name);
    // Fails here, naming the namespace, when the namespace itself does not exist.
    let workloads = client.workloads(Some(ns)).await?;
    if let Some(w) = workloads.iter().find(|w| w.instances.iter().any(|i| i.id == id)) {
        return Ok(filter(&w.name, Some(id)));
    }
    // An instance that left its workload: its id is the workload's name and a suffix.
    if let Some((prefix, _)) = id.rsplit_once('-') {
        if workloads.iter().any(|w| w.name == prefix) {
            return Ok(filter(prefix, Some(id)));
        }
    }
    Err(anyhow!(
        "{name} is neither a workload nor an instance in namespace {ns} (`edgectl get workloads` and `edgectl get \
         pods` list them; -n picks another namespace)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(instance: &str, at: &str, text: &str) -> LogLineView {
        LogLineView {
            seq: 1,
            instance: instance.into(),
            node: "dev-1".into(),
            stream: "stdout".into(),
            at: at.into(),
            line: text.into(),
        }
    }

    #[test]
    fn a_workload_prefixes_instances_an_instance_does_not() {
        let l = line("tick-x7k2p", "2025-06-01T12:00:00.120Z", "tick 3");
        let mut f = Filter { workload: "tick".into(), instance: None, since: None, timestamps: false };
        assert_eq!(f.render(&l), "[tick-x7k2p] tick 3");
        f.timestamps = true;
        assert_eq!(f.render(&l), "2025-06-01T12:00:00.120Z [tick-x7k2p] tick 3");
        f.instance = Some("tick-x7k2p".into());
        assert_eq!(f.render(&l), "2025-06-01T12:00:00.120Z tick 3");
        assert!(f.keeps(&l));
        assert!(!f.keeps(&line("tick-b9qzd", "2025-06-01T12:00:00Z", "x")), "another instance's line");
    }

    #[test]
    fn since_keeps_newer_lines() {
        let since = OffsetDateTime::parse("2025-06-01T12:00:00Z", &Rfc3339).unwrap();
        let f = Filter { workload: "tick".into(), instance: None, since: Some(since), timestamps: false };
        assert!(f.keeps(&line("a", "2025-06-01T12:00:00.001Z", "new")));
        assert!(f.keeps(&line("a", "2025-06-01T12:00:00Z", "same instant")));
        assert!(!f.keeps(&line("a", "2025-06-01T11:59:59.999Z", "old")));
    }
}
