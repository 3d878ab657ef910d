//! Label selectors as kubectl reads them (`-l zone=a,board!=pico,gpu,!spare`): every requirement must hold.
//! Pure: parsed once, matched against a label map.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

impl Selector {
    pub fn parse(s: &str) -> Result<Selector> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let req = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(key(k, s)?, v.trim().to_string())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(key(k, s)?, v.trim().to_string())
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::Absent(key(k, s)?)
            } else {
                Requirement::Exists(key(part, s)?)
            };
            out.push(req);
        }
        if out.is_empty() {
            return Err(anyhow!("selector {s:?} is empty (try -l key=value)"));
        }
        Ok(Selector(out))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
        })
    }
}

fn key(k: &str, whole: &str) -> Result<String> {
    let k = k.trim();
    if k.is_empty() || k.contains(|c: char| c.is_whitespace() || c == '!' || c == '=') {
        return Err(anyhow!("selector {whole:?}: {k:?} is not a label key (try -l key=value,other!=value)"));
    }
    Ok(k.to_string())
}

/// Labels as kubectl's LABELS column shows them: `k=v,k2=v2`, or `<none>`.
pub fn show(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<none>".into();
    }
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_requirement_must_hold() {
        let l = labels(&[("zone", "a"), ("board", "rpi-4"), ("gpu", "")]);
        for (sel, want) in [
            ("zone=a", true),
            ("zone==a", true),
            ("zone=b", false),
            ("zone=a,board=rpi-4", true),
            ("zone=a,board=rpi-5", false),
            ("board!=pico-w", true),
            ("zone!=a", false),
            ("gpu", true),
            ("spare", false),
            ("!spare", true),
            ("!gpu", false),
            (" zone = a , gpu ", true),
        ] {
            assert_eq!(Selector::parse(sel).unwrap().matches(&l), want, "{sel}");
        }
    }

    #[test]
    fn bad_selectors_say_what_to_write() {
        for bad in ["", ",", "=a", "a b=c", "!=x"] {
            let e = Selector::parse(bad).unwrap_err().to_string();
            assert!(e.contains("try -l key=value"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn labels_column() {
        assert_eq!(show(&labels(&[])), "<none>");
        assert_eq!(show(&labels(&[("b", "2"), ("a", "1")])), "a=1,b=2");
    }
}
