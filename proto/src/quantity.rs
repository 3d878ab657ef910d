//! Kubernetes quantity syntax: CPU as `250m` or `0.5` or `2`; memory as `64Mi`, `1G`, `512Ki`, `1048576`.
//! Shared by `edgectl` flags and the agent's standalone manifests, so both read quantities the same way.

use alloc::format;
use alloc::string::{String, ToString};

/// Parses a CPU quantity into millicores.
pub fn parse_cpu(s: &str) -> Result<u32, String> {
    let bad = || format!("invalid CPU quantity {s:?} (examples: 250m, 0.5, 2)");
    let s = s.trim();
    let millis = if let Some(m) = s.strip_suffix('m') {
        m.parse::<u64>().map_err(|_| bad())?
    } else {
        let v: f64 = s.parse().map_err(|_| bad())?;
        if !v.is_finite() || v < 0.0 {
            return Err(bad());
        }
        (v * 1000.0 + 0.5) as u64 // v >= 0: rounds half up without libm
    };
    u32::try_from(millis).map_err(|_| bad())
}

/// Memory suffixes and their sizes: the binary ones (`Ki`…`Ei`), then the decimal ones (`k`…`E`), each from small
/// to large.
const MEMORY_UNITS: [(&str, u64); 12] = [
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("Ei", 1 << 60),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
];

/// Parses a memory quantity into bytes.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid memory quantity {s:?} (examples: 64Mi, 1Gi, 500M, 1048576)");
    let s = s.trim();
    let (num, mult) =
        MEMORY_UNITS.iter().find_map(|(suffix, mult)| s.strip_suffix(suffix).map(|n| (n, *mult))).unwrap_or((s, 1));
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult).ok_or_else(bad);
    }
    let v: f64 = num.parse().map_err(|_| bad())?;
    if !v.is_finite() || v < 0.0 || v * mult as f64 > u64::MAX as f64 {
        return Err(bad());
    }
    Ok((v * mult as f64 + 0.5) as u64)
}

/// Formats bytes the way `get nodes` prints them: `512Mi`, `3.8Gi`.
pub fn format_memory(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            let v = bytes as f64 / size as f64;
            return if bytes % size == 0 { format!("{}{unit}", bytes / size) } else { format!("{v:.1}{unit}") };
        }
    }
    bytes.to_string()
}

/// Bytes in the largest unit that holds them exactly (`64Mi`, `500M`, `1000`): what [`parse_memory`] reads back
/// to the same number, unlike the rounded [`format_memory`] of tables. Binary units first, then decimal ones up
/// to `T`.
pub fn format_memory_exact(bytes: u64) -> String {
    let binary = MEMORY_UNITS[..6].iter().rev();
    let decimal = MEMORY_UNITS[6..10].iter().rev();
    match binary.chain(decimal).find(|(_, size)| bytes > 0 && bytes % *size == 0) {
        Some((unit, size)) => format!("{}{unit}", bytes / size),
        None => bytes.to_string(),
    }
}

/// Formats millicores: `250m`, `2`.
pub fn format_cpu(millis: u32) -> String {
    if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Parses a duration like `500ms`, `30s`, `5m`, `1h`, `7d` (or bare seconds) into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid duration {s:?} (examples: 500ms, 30s, 5m, 1h, 7d)");
    let s = s.trim();
    let (num, mult) = [("ms", 1u64), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        .iter()
        .find_map(|(suffix, mult)| s.strip_suffix(suffix).map(|n| (n, *mult)))
        .unwrap_or((s, 1_000));
    let v: f64 = num.parse().map_err(|_| bad())?;
    if !v.is_finite() || v < 0.0 || v * mult as f64 > u64::MAX as f64 {
        return Err(bad());
    }
    Ok((v * mult as f64 + 0.5) as u64)
}

/// Parses a duration flag (`500ms`, `2s`, `1m`, `1h`, `7d`, or bare seconds): the one syntax of every duration flag on
/// every binary.
pub fn parse_duration(s: &str) -> Result<core::time::Duration, String> {
    parse_duration_ms(s).map(core::time::Duration::from_millis)
}

/// Formats a duration the way [`parse_duration`] reads it (`500ms`, `2s`, `90s`, `5m`, `1h`).
pub fn format_duration(d: core::time::Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 || ms == 0 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Parses a volume declaration `NAME:SIZE` (e.g. `data:64Mi`); the name must be a valid name (it becomes the
/// guest path `/NAME` and a directory on the node).
pub fn parse_volume(s: &str) -> Result<crate::VolumeSpec, String> {
    let (name, size) = s.split_once(':').ok_or_else(|| format!("volume {s:?}: expected NAME:SIZE, e.g. data:64Mi"))?;
    crate::validate_name(name).map_err(|e| format!("volume name {name:?}: {e}"))?;
    let size_bytes = parse_memory(size).map_err(|e| format!("volume {name}: {e}"))?;
    if size_bytes == 0 {
        return Err(format!("volume {name}: size must be more than 0"));
    }
    Ok(crate::VolumeSpec { name: name.to_string(), size_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_flags_share_one_syntax() {
        use core::time::Duration;
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("2 weeks").is_err());
        assert!(parse_duration("-1s").is_err());
        for d in [Duration::from_millis(500), Duration::from_secs(2), Duration::from_secs(60), Duration::from_secs(90)]
        {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn durations_and_volumes() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms("1.5m"), Ok(90_000));
        assert_eq!(parse_duration_ms("2"), Ok(2_000));
        assert!(parse_duration_ms("soon").is_err());
        assert!(parse_duration_ms("-1s").is_err());
        let v = parse_volume("data:64Mi").unwrap();
        assert_eq!((v.name.as_str(), v.size_bytes), ("data", 64 << 20));
        assert!(parse_volume("data").unwrap_err().contains("NAME:SIZE"));
        assert!(parse_volume("../x:1Mi").is_err());
        assert!(parse_volume("data:lots").is_err());
        assert!(parse_volume("data:0").is_err());
    }

    #[test]
    fn parses_kubernetes_quantities() {
        assert_eq!(parse_cpu("250m"), Ok(250));
        assert_eq!(parse_cpu("0.5"), Ok(500));
        assert_eq!(parse_cpu("2"), Ok(2000));
        assert!(parse_cpu("lots").is_err());
        assert!(parse_cpu("-1").is_err());
        assert_eq!(parse_memory("64Mi"), Ok(64 << 20));
        assert_eq!(parse_memory("100Gi"), Ok(100 << 30));
        assert_eq!(parse_memory("1.5Gi"), Ok(3 << 29));
        assert_eq!(parse_memory("500M"), Ok(500_000_000));
        assert_eq!(parse_memory("1048576"), Ok(1 << 20));
        assert!(parse_memory("12XB").is_err());
        assert!(parse_memory("99999999999Ei").is_err());
    }

    #[test]
    fn formats_for_tables() {
        assert_eq!(format_memory(64 << 20), "64Mi");
        assert_eq!(format_memory(3 << 29), "1.5Gi");
        assert_eq!(format_memory(100), "100");
        assert_eq!(format_cpu(2000), "2");
        assert_eq!(format_cpu(250), "250m");
    }
}
