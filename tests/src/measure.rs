//! Small helpers the bench binaries share: percentiles of sorted samples, a timed GET, the load average.

use std::time::{Duration, Instant};

/// Nearest-rank percentile of sorted samples.
pub fn pct(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One GET: its time (to the last byte of the body) and the body; a non-success status is an error naming it.
pub async fn timed_get(http: &reqwest::Client, url: &str) -> anyhow::Result<(Duration, Vec<u8>)> {
    let t = Instant::now();
    let resp = http.get(url).send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    let took = t.elapsed();
    if !status.is_success() {
        anyhow::bail!("GET {url} answered {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok((took, body.to_vec()))
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` says them (empty where there is none).
pub fn loadavg() -> String {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}
