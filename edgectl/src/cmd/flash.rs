//! `edgectl flash IMAGE --board B --node N --join TOKEN`: customise a Raspberry Pi OS image (or, with
//! `--device`, a card it is first copied onto) so that the board installs `edge-agent` and joins on first boot.
//!
//! Every refusal comes before anything is written: the board (a Linux board, not a microcontroller), the
//! agent binary (there, and built for the board's architecture per its ELF header), the image (an MBR with a
//! FAT32 boot partition holding a `cmdline.txt`), the device. Then the binary, the text files of
//! [`recipe::plan`] and last `cmdline.txt`, so that a card interrupted half-way does not boot a recipe whose
//! files are missing.

use std::fs::File;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};

use crate::cli::{FlashArgs, FlashFormat};
use crate::flash::image::BootFs;
use crate::flash::recipe::{self, Existing, Format, Settings, Wifi};
use crate::flash::{device, elf};
use crate::progress::Progress;

/// The systemd unit put on the card, `deploy/edge-agent.service`; [`recipe::unit_user`] reads from it the user
/// that first boot creates and that may read agent.toml.
const UNIT: &str = recipe::SHIPPED_UNIT;

pub fn run(server: &str, args: FlashArgs) -> anyhow::Result<()> {
    let board = edge_boards::find(&args.board).ok_or_else(|| {
        anyhow!("--board {:?}: no such board (known: {})", args.board, edge_boards::names().join(", "))
    })?;
    if board.runtime == edge_boards::Runtime::Firmware {
        bail!(
            "--board {}: a microcontroller ({}), which runs the firmware, not a Linux image: there is nothing to flash",
            board.name,
            board.description
        );
    }
    check_name("--node", &args.node)?;
    if let Some(h) = &args.hostname {
        check_name("--hostname", h)?;
    }
    let broker = broker(args.broker.as_deref(), server)?;
    let binary = args.agent_binary.clone().unwrap_or_else(|| default_binary(board.target_triple));
    let machine = check_binary(&binary, board, args.agent_binary.is_none())?;
    let binary_len = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    let ssh_key = args.ssh_key.as_deref().map(read_public_key).transpose()?;
    let wifi = wifi(&args)?;
    let settings = Settings {
        node: args.node.clone(),
        join: args.join.clone(),
        broker,
        board: board.name.to_string(),
        hostname: args.hostname.clone(),
        ssh_key,
        wifi,
        unit_user: recipe::unit_user(UNIT),
    };

    let target = match &args.device {
        Some(dev) => {
            let d = device::check(dev)?;
            if args.dry_run {
                println!(
                    "would copy {} onto {} ({}), then customise it:",
                    args.image.display(),
                    dev.display(),
                    describe(&d)
                );
            } else {
                confirm(&d, args.yes)?;
                copy_image(&args.image, dev)?;
            }
            // A dry run reads the boot partition of the image, as it would be on the card.
            if args.dry_run {
                args.image.clone()
            } else {
                dev.clone()
            }
        }
        None => args.image.clone(),
    };

    let fs = BootFs::open(&target, !args.dry_run)?;
    let Some(cmdline) = fs.read_text(recipe::CMDLINE)? else {
        bail!(
            "{}: the FAT partition {} has no cmdline.txt, so it is not a Raspberry Pi OS boot partition",
            target.display(),
            fs.partition.number
        );
    };
    let existing = Existing {
        cmdline,
        user_data: fs.read_text(recipe::USER_DATA)?,
        network_config: fs.read_text(recipe::NETWORK_CONFIG)?,
        firstrun: fs.read_text(recipe::FIRSTRUN)?,
    };
    let format = match args.format {
        Some(FlashFormat::CloudInit) => Format::CloudInit,
        Some(FlashFormat::Firstrun) => Format::Firstrun,
        None => Format::detect(existing.user_data.is_some()),
    };
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let instance = recipe::instance_id(&settings.node, now_ms);
    let plan = recipe::plan(format, &settings, UNIT, &existing, &instance);

    // Room for the binary and the text files, counting what they replace.
    let replaced = fs.read(recipe::AGENT_BINARY)?.map_or(0, |b| b.len() as u64);
    let needed = binary_len + plan.writes.iter().map(|(_, t)| t.len() as u64 + 4096).sum::<u64>();
    let free = fs.free_bytes()? + replaced;
    if needed > free {
        bail!("{}: the boot partition has {free} bytes free, the agent and its files need {needed}", target.display());
    }

    let summary = format!(
        "{} (partition {}, {}): edge-agent ({machine}, {binary_len} bytes), {}",
        target.display(),
        fs.partition.number,
        format.as_str(),
        plan.writes.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    );
    if args.dry_run {
        print_dry_run(&summary, &plan, &settings);
        return Ok(());
    }
    let mut bin = File::open(&binary).with_context(|| format!("cannot open {}", binary.display()))?;
    fs.write(recipe::AGENT_BINARY, &mut bin)?;
    for (name, text) in &plan.writes {
        fs.write(name, &mut text.as_bytes())?;
    }
    let mut removed = Vec::new();
    for name in &plan.removes {
        if fs.remove(name)? {
            removed.push(*name);
        }
    }
    fs.close()?;
    println!("flashed {summary}");
    if !removed.is_empty() {
        println!("removed from an earlier flash: {}", removed.join(", "));
    }
    println!(
        "on first boot the board installs edge-agent and joins as node {} through {}",
        settings.node, settings.broker
    );
    Ok(())
}

/// Node names and hostnames: lowercase letters, digits and '-', as the agent requires of a node (and a hostname
/// allows), so both go into shell and YAML as they are.
fn check_name(flag: &str, name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        bail!("{flag} {name:?}: use 1 to 63 lowercase letters, digits and '-' (not first or last)");
    }
    Ok(())
}

/// The broker as the board reaches it: `--broker`, else the controller's host on the MQTT port. A loopback
/// controller address is refused: on the board it would be the board itself.
fn broker(flag: Option<&str>, server: &str) -> anyhow::Result<String> {
    if let Some(b) = flag {
        edge_proto::parse_broker_endpoint(b).map_err(|e| anyhow!("--broker {b:?}: {e} (or mqtts://…)"))?;
        return Ok(b.to_string());
    }
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let loopback =
        host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    if host.is_empty() || loopback {
        bail!(
            "--broker missing: the controller's address {server} is this machine's loopback, which the board cannot \
             reach; give --broker mqtt://HOST:1883 (or --server with an address the board can reach)"
        );
    }
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    // A controller serving HTTPS beyond loopback serves MQTT over TLS too (`--api-tls`/`--mqtt-tls` auto).
    let scheme = if server.starts_with("https://") { "mqtts" } else { "mqtt" };
    Ok(format!("{scheme}://{host}:1883"))
}

/// Where `cargo build --release --target TRIPLE -p edge-agent` puts the agent, from the project root.
fn default_binary(triple: &str) -> PathBuf {
    Path::new("target").join(triple).join("release").join("edge-agent")
}

/// The agent binary's architecture, refused unless it runs on the board.
fn check_binary(path: &Path, board: &edge_boards::Board, defaulted: bool) -> anyhow::Result<elf::Machine> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if defaulted => bail!(
            "no agent binary at {} ({e}): build it with `cargo build --release --target {} -p edge-agent`, or give \
             --agent-binary PATH",
            path.display(),
            board.target_triple
        ),
        Err(e) => bail!("--agent-binary {}: {e}", path.display()),
    };
    let mut header = [0u8; 64];
    let n = f.read(&mut header).with_context(|| format!("cannot read {}", path.display()))?;
    let machine = elf::machine(&header[..n]).map_err(|e| anyhow!("agent binary {}: {e}", path.display()))?;
    if !machine.runs_on(board.arch) {
        bail!(
            "agent binary {} is built for {machine}, but board {} is {} (build edge-agent for {})",
            path.display(),
            board.name,
            board.arch,
            board.target_triple
        );
    }
    Ok(machine)
}

/// An OpenSSH public key file (`authorized_keys` lines); a private key is refused rather than copied.
fn read_public_key(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("--ssh-key {}", path.display()))?;
    if text.contains("PRIVATE KEY") {
        bail!("--ssh-key {}: a private key; give the public one ({}.pub)", path.display(), path.display());
    }
    let keys: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    if keys.is_empty() || !keys.iter().all(|k| k.split_whitespace().count() >= 2) {
        bail!("--ssh-key {}: not an OpenSSH public key (ssh-ed25519 AAAA… comment)", path.display());
    }
    Ok(keys.join("\n"))
}

fn wifi(args: &FlashArgs) -> anyhow::Result<Option<Wifi>> {
    let (Some(ssid), Some(password), Some(country)) = (&args.wifi_ssid, &args.wifi_password, &args.wifi_country) else {
        return Ok(None);
    };
    if ssid.is_empty() || ssid.len() > 32 {
        bail!("--wifi-ssid: 1 to 32 bytes");
    }
    let hex = password.len() == 64 && password.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex && !(8..=63).contains(&password.len()) {
        bail!("--wifi-password: a WPA passphrase is 8 to 63 characters (or 64 hex digits)");
    }
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
        bail!("--wifi-country {country:?}: a two-letter country code (GB, DE, US, …)");
    }
    Ok(Some(Wifi { ssid: ssid.clone(), password: password.clone(), country: country.to_ascii_uppercase() }))
}

fn describe(d: &device::Device) -> String {
    let size = format!("{:.1} GB", d.bytes as f64 / 1e9);
    if d.model.is_empty() {
        format!("{}, {size}", d.name)
    } else {
        format!("{}, {}, {size}", d.name, d.model)
    }
}

fn confirm(d: &device::Device, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    eprint!("This erases everything on {} ({}). Type yes to go on: ", d.path.display(), describe(d));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).context("cannot read the confirmation")?;
    if answer.trim() != "yes" {
        bail!("not confirmed: nothing written to {} (type yes, or give --yes)", d.path.display());
    }
    Ok(())
}

/// Copies the image onto the card, with a progress bar on a terminal, and waits until it is on the card.
fn copy_image(image: &Path, dev: &Path) -> anyhow::Result<()> {
    let mut src = File::open(image).with_context(|| format!("cannot open {}", image.display()))?;
    let total = src.seek(SeekFrom::End(0))?;
    src.seek(SeekFrom::Start(0))?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .open(dev)
        .with_context(|| format!("cannot open {} for writing", dev.display()))?;
    let bar = Progress::bytes(total, format!("writing {}", dev.display()));
    if !crate::progress::on_terminal() {
        eprintln!("writing {} ({total} bytes) onto {}", image.display(), dev.display());
    }
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = src.read(&mut buf).with_context(|| format!("cannot read {}", image.display()))?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n]).with_context(|| format!("cannot write {}", dev.display()))?;
        bar.advance(n as u64);
    }
    dst.sync_all().with_context(|| format!("cannot flush {}", dev.display()))?;
    Ok(())
}

/// What a flash would write, with the token and the Wi-Fi password left out.
fn print_dry_run(summary: &str, plan: &recipe::Plan, s: &Settings) {
    let redact = |t: &str| {
        let t = t.replace(&s.join, "<join token>");
        match &s.wifi {
            Some(w) => t.replace(&w.password, "<wifi password>"),
            None => t,
        }
    };
    println!("would flash {summary} (dry run: nothing written)");
    for (name, text) in &plan.writes {
        println!("--- {name} ({} bytes)", text.len());
        if *name != recipe::UNIT {
            print!("{}", redact(text));
        }
    }
    for name in &plan.removes {
        println!("--- would remove {name} (if there)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_defaults_to_the_controllers_host_but_never_loopback() {
        assert_eq!(broker(None, "http://10.0.0.5:7700").unwrap(), "mqtt://10.0.0.5:1883");
        assert_eq!(broker(None, "https://ctl.example:443/").unwrap(), "mqtts://ctl.example:1883");
        assert_eq!(broker(None, "http://[fd00::1]:7700").unwrap(), "mqtt://[fd00::1]:1883");
        for s in ["http://127.0.0.1:7700", "http://localhost:7700", "http://[::1]:7700", "0.0.0.0:7700"] {
            let e = broker(None, s).unwrap_err().to_string();
            assert!(e.contains("--broker") && e.contains("loopback") && !e.contains('\n'), "{s}: {e}");
        }
        assert_eq!(broker(Some("mqtt://127.0.0.1:1884"), "x").unwrap(), "mqtt://127.0.0.1:1884");
        assert!(broker(Some("http://x"), "x").is_err());
    }

    #[test]
    fn names_are_refused_with_the_rule() {
        assert!(check_name("--node", "kitchen-2").is_ok());
        for bad in ["", "Kitchen", "-a", "a-", "a b", "a;rm", &"a".repeat(64)] {
            let e = check_name("--node", bad).unwrap_err().to_string();
            assert!(e.starts_with("--node") && e.contains("lowercase"), "{e}");
        }
    }

    #[test]
    fn the_binary_must_match_the_board() {
        let dir = tempfile::tempdir().unwrap();
        let rpi4 = edge_boards::find("rpi-4").unwrap();
        let mut h = b"\x7fELF\x02\x01\x01\x00".to_vec();
        h.extend([0; 8]);
        h.extend(2u16.to_le_bytes());
        h.extend(62u16.to_le_bytes());
        h.extend([0; 44]);
        let x86 = dir.path().join("x86");
        std::fs::write(&x86, &h).unwrap();
        let e = check_binary(&x86, rpi4, false).unwrap_err().to_string();
        assert!(e.contains("x86_64") && e.contains("aarch64") && e.contains("rpi-4"), "{e}");
        h[18..20].copy_from_slice(&183u16.to_le_bytes());
        std::fs::write(&x86, &h).unwrap();
        assert_eq!(check_binary(&x86, rpi4, false).unwrap().name(), "aarch64");
        let e = check_binary(&dir.path().join("none"), rpi4, true).unwrap_err().to_string();
        assert!(e.contains("no agent binary") && e.contains("aarch64-unknown-linux-gnu"), "{e}");
        let script = dir.path().join("sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert!(check_binary(&script, rpi4, false).unwrap_err().to_string().contains("not an ELF"));
    }

    #[test]
    fn a_private_key_is_not_copied() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("id");
        std::fs::write(&k, "-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n").unwrap();
        assert!(read_public_key(&k).unwrap_err().to_string().contains("private key"));
        std::fs::write(&k, "ssh-ed25519 AAAAC3 me@host\n\n").unwrap();
        assert_eq!(read_public_key(&k).unwrap(), "ssh-ed25519 AAAAC3 me@host");
    }
}
