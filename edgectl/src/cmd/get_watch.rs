//! `edgectl get nodes|workloads|pods -w`: the table, then each row again whenever it changes, as `kubectl get -w`
//! prints them. The controller has no watch API, so the table is fetched every second and compared with the last
//! one by [`Tracker`] (pure, below); Ctrl-C ends the watch with exit 0.
//!
//! What counts as a change: any cell but the ones that move with the clock alone (AGE, LAST SEEN, JOINED), else
//! every row would print every second. A row that disappears (a deleted workload, a replaced instance) is printed
//! once more with STATUS `Deleted` (AGE when the table has no STATUS). Rows keep the first table's column widths,
//! so the output stays aligned as it grows (a longer cell pushes its row, as kubectl's does).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Result};
use time::OffsetDateTime;

use crate::cli::{GetArgs, GetOutput, GetWhat};
use crate::client::Client;
use crate::selector::Selector;

/// How often the table is fetched again.
const POLL: Duration = Duration::from_secs(1);

/// Columns whose cells change with the clock, not with the object.
const CLOCK_COLUMNS: [&str; 3] = ["AGE", "LAST SEEN", "JOINED"];

pub async fn run(client: &Client, ns: &str, args: &GetArgs, selector: Option<&Selector>) -> Result<()> {
    if !matches!(args.output, GetOutput::Table | GetOutput::Wide) {
        bail!("-w prints tables: use it with -o wide or no -o");
    }
    let scope = if args.all_namespaces { None } else { Some(ns) };
    let poll = async {
        let mut tracker: Option<Tracker> = None;
        let mut first = true;
        loop {
            let table = super::get::table_of(client, ns, args, selector, OffsetDateTime::now_utc(), first).await?;
            let (header, rows) = table.into_parts();
            if first && rows.is_empty() {
                let namespaced = matches!(args.what, GetWhat::Workloads | GetWhat::Instances);
                eprintln!("{}", super::get::none_found(namespaced.then_some(scope)));
            }
            first = false;
            let lines = tracker.get_or_insert_with(|| Tracker::new(header)).update(rows);
            let mut out = std::io::stdout().lock();
            for line in lines {
                // A closed pipe (`| head`) ends the watch quietly.
                if writeln!(out, "{line}").is_err() {
                    return Ok(());
                }
            }
            let _ = out.flush();
            tokio::time::sleep(POLL).await;
        }
    };
    tokio::select! {
        r = poll => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// What a watch remembers between two tables: the last row of each object, and the column widths once set.
#[derive(Debug)]
pub struct Tracker {
    header: Vec<String>,
    /// Columns that identify a row: up to NAME (NAMESPACE and NAME under `-A`).
    key_columns: usize,
    /// Columns ignored when comparing (they move with the clock).
    clock: Vec<bool>,
    /// Where a row that disappeared says so: STATUS, else AGE, else none.
    gone_column: Option<usize>,
    /// Set by the first rows printed (with the header above them).
    widths: Option<Vec<usize>>,
    last: BTreeMap<Vec<String>, Vec<String>>,
    /// Keys in the order they were first seen, so disappeared rows print in a stable order.
    order: Vec<Vec<String>>,
}

impl Tracker {
    pub fn new(header: Vec<String>) -> Tracker {
        let key_columns = header.iter().position(|h| h == "NAME").map_or(1, |i| i + 1);
        let clock = header.iter().map(|h| CLOCK_COLUMNS.contains(&h.as_str())).collect();
        let gone_column = header.iter().position(|h| h == "STATUS").or_else(|| header.iter().position(|h| h == "AGE"));
        Tracker { header, key_columns, clock, gone_column, widths: None, last: BTreeMap::new(), order: Vec::new() }
    }

    /// The lines to print for a new table's rows: the header and every row the first time there are rows; then
    /// the rows that are new or changed, in the table's order, and those that disappeared.
    pub fn update(&mut self, rows: Vec<Vec<String>>) -> Vec<String> {
        let mut out = Vec::new();
        let mut changed: Vec<Vec<String>> = Vec::new();
        let mut now: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
        for row in rows {
            let key = self.key(&row);
            if self.last.get(&key).is_none_or(|old| !self.same(old, &row)) {
                changed.push(row.clone());
            }
            if !self.last.contains_key(&key) && !now.contains_key(&key) {
                self.order.push(key.clone());
            }
            now.insert(key, row);
        }
        let mut gone = Vec::new();
        self.order.retain(|key| {
            if now.contains_key(key) {
                return true;
            }
            if let Some(mut row) = self.last.get(key).cloned() {
                if let Some(cell) = self.gone_column.and_then(|c| row.get_mut(c)) {
                    *cell = "Deleted".into();
                }
                gone.push(row);
            }
            false
        });
        changed.extend(gone);
        self.last = now;
        if changed.is_empty() {
            return out;
        }
        let first = self.widths.is_none();
        let widths = self.widths.get_or_insert_with(|| {
            (0..self.header.len())
                .map(|c| {
                    std::iter::once(&self.header)
                        .chain(&changed)
                        .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                        .max()
                        .unwrap_or(0)
                })
                .collect()
        });
        if first {
            out.push(line(&self.header, widths));
        }
        out.extend(changed.iter().map(|r| line(r, widths)));
        out
    }

    fn key(&self, row: &[String]) -> Vec<String> {
        row.iter().take(self.key_columns).cloned().collect()
    }

    fn same(&self, a: &[String], b: &[String]) -> bool {
        a.len() == b.len() && a.iter().zip(b).zip(&self.clock).all(|((x, y), clock)| *clock || x == y)
    }
}

/// One row padded to `widths`, as `Table::render` lays them out (three spaces between columns).
fn line(cells: &[String], widths: &[usize]) -> String {
    let mut out = String::new();
    for (c, cell) in cells.iter().enumerate() {
        if c + 1 == cells.len() {
            out.push_str(cell);
        } else {
            let w = widths.get(c).copied().unwrap_or(0);
            out.push_str(&format!("{cell:<w$}   "));
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    fn header() -> Vec<String> {
        row(&["NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE"])
    }

    #[test]
    fn the_first_table_prints_whole_then_only_changes() {
        let mut t = Tracker::new(header());
        let a = row(&["tick-a", "0/1", "Pending", "0", "-", "<none>"]);
        let b = row(&["tick-b", "1/1", "Running", "0", "5s", "dev-1"]);
        assert_eq!(
            t.update(vec![a.clone(), b.clone()]),
            [
                "NAME     READY   STATUS    RESTARTS   AGE   NODE",
                "tick-a   0/1     Pending   0          -     <none>",
                "tick-b   1/1     Running   0          5s    dev-1",
            ]
        );
        // Only AGE moved: nothing to print.
        let b_later = row(&["tick-b", "1/1", "Running", "0", "6s", "dev-1"]);
        assert!(t.update(vec![a.clone(), b_later.clone()]).is_empty());
        // tick-a started: only its row, in the first table's widths.
        let a_running = row(&["tick-a", "1/1", "Running", "0", "1s", "dev-2"]);
        assert_eq!(t.update(vec![a_running.clone(), b_later]), ["tick-a   1/1     Running   0          1s    dev-2"]);
        // tick-b replaced by tick-c: the new row, then the old one as deleted.
        let c = row(&["tick-c", "0/1", "ContainerCreating", "0", "-", "dev-1"]);
        assert_eq!(
            t.update(vec![a_running.clone(), c.clone()]),
            [
                "tick-c   0/1     ContainerCreating   0          -     dev-1",
                "tick-b   1/1     Deleted   0          6s    dev-1",
            ]
        );
        assert!(t.update(vec![a_running, c]).is_empty(), "a deleted row prints once");
    }

    #[test]
    fn an_empty_start_prints_the_header_with_the_first_rows() {
        let mut t = Tracker::new(header());
        assert!(t.update(vec![]).is_empty());
        let lines = t.update(vec![row(&["tick-a", "0/1", "Pending", "0", "-", "<none>"])]);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("NAME     READY"), "{lines:?}");
    }

    #[test]
    fn rows_are_keyed_by_namespace_and_name_and_deleted_without_status_in_age() {
        let mut t = Tracker::new(row(&["NAMESPACE", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]));
        let a = row(&["a", "tick", "1/1", "1", "1", "1m"]);
        let b = row(&["b", "tick", "1/1", "1", "1", "2m"]);
        assert_eq!(t.update(vec![a.clone(), b.clone()]).len(), 3, "same name, two namespaces: two rows");
        let gone = t.update(vec![b]);
        assert_eq!(gone, ["a           tick   1/1     1            1           Deleted"]);
    }

    #[test]
    fn clock_columns_of_nodes_are_ignored() {
        let h = row(&["NAME", "STATUS", "AGE", "LAST SEEN", "JOINED"]);
        let mut t = Tracker::new(h);
        t.update(vec![row(&["dev-1", "Ready", "3m", "1s ago", "3m"])]);
        assert!(t.update(vec![row(&["dev-1", "Ready", "4m", "2s ago", "4m"])]).is_empty());
        assert_eq!(t.update(vec![row(&["dev-1", "NotReady", "4m", "40s ago", "4m"])]).len(), 1);
    }
}
