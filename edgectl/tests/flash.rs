//! `edgectl flash` on realistic Raspberry Pi OS images built here without root, as pi-gen lays them out: an MBR
//! (`sfdisk`) with a FAT32 `bootfs` at sector 16384 (`mkfs.vfat -F 32 -s 1 -S 512`, 512-byte clusters) holding a
//! Trixie boot partition (`cmdline.txt`, `user-data`, `meta-data`) or a Bookworm one (`cmdline.txt` only). Each
//! flash is read back with an independent reader (mtools), checked with `fsck.fat -n`, and its first-boot recipe
//! is run against a throwaway root whose `/boot/firmware` holds the files read back from the image.
//!
//! Needs the Debian packages fdisk, dosfstools and mtools: a missing tool fails the test naming its package.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use yaml_rust2::{Yaml, YamlLoader};

const OFFSET: u64 = 16384 * 512;
const TRIXIE_CMDLINE: &str =
    "console=serial0,115200 console=tty1 root=PARTUUID=deadbeef-02 rootfstype=ext4 fsck.repair=yes rootwait resize\n";
const BOOKWORM_CMDLINE: &str =
    "console=serial0,115200 console=tty1 root=PARTUUID=deadbeef-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n";
const TOKEN: &str = "edge1.s3cr3t-t0ken";

fn tool(name: &str, package: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")]).collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    match found {
        Some(p) => Command::new(p),
        None => panic!("{name} is missing: apt-get install {package} (the flash tests need fdisk, dosfstools, mtools)"),
    }
}

fn run(mut c: Command) -> Output {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Os {
    Trixie,
    Bookworm,
}

/// A 300 MiB image: bootfs at sector 16384 (128 MiB), a root partition after it (left empty: only its table
/// entry matters here).
fn image(dir: &Path, os: Os) -> PathBuf {
    let img = dir.join("rpi.img");
    std::fs::File::create(&img).unwrap().set_len(300 << 20).unwrap();
    let mut sfdisk = tool("sfdisk", "fdisk");
    sfdisk.arg("-q").arg(&img).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::null());
    let mut child = sfdisk.spawn().unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"label: dos\nstart=16384, size=262144, type=c\nstart=278528, type=83\n",
    )
    .unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk failed");
    let mut mkfs = tool("mkfs.vfat", "dosfstools");
    mkfs.args(["-F", "32", "-s", "1", "-S", "512", "-n", "BOOTFS", "--offset", "16384"]).arg(&img).arg("131072");
    run(mkfs);
    let mut files = vec![("cmdline.txt", if os == Os::Trixie { TRIXIE_CMDLINE } else { BOOKWORM_CMDLINE })];
    files.push(("config.txt", "[all]\narm_64bit=1\n"));
    if os == Os::Trixie {
        files.push(("user-data", "#cloud-config\n# The image's own: commented examples.\n"));
        files.push(("meta-data", "instance-id: rpios-image\n"));
    }
    for (name, text) in files {
        let f = dir.join(name);
        std::fs::write(&f, text).unwrap();
        let mut c = tool("mcopy", "mtools");
        c.arg("-i").arg(at(&img)).arg(&f).arg("::/");
        run(c);
    }
    img
}

fn at(img: &Path) -> String {
    format!("{}@@{OFFSET}", img.display())
}

/// A stand-in agent: the acceptance check's aarch64 ELF header (e_machine 183, 64-bit), then `len` bytes.
fn agent(dir: &Path, e_machine: u16, len: usize) -> PathBuf {
    let mut h = b"\x7fELF".to_vec();
    h.extend([2, 1, 1, 0]);
    h.extend([0; 8]);
    for v in [2u16, e_machine] {
        h.extend(v.to_le_bytes());
    }
    h.extend(1u32.to_le_bytes());
    for v in [0x40_0000u64, 64, 0] {
        h.extend(v.to_le_bytes());
    }
    h.extend(0u32.to_le_bytes());
    for v in [64u16, 56, 0, 64, 0, 0] {
        h.extend(v.to_le_bytes());
    }
    assert_eq!(h.len(), 64);
    // Not all zeros, so that a misplaced cluster shows when the binary is read back.
    h.extend((0..len).map(|i| (i * 7 + i / 512) as u8));
    let p = dir.join(format!("edge-agent-{e_machine}"));
    std::fs::write(&p, h).unwrap();
    p
}

/// `edgectl flash IMG` for node kitchen on an rpi-4 (unless `args` name another board).
fn flash(img: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgectl"));
    c.env_remove("EDGE_SERVER").env("HOME", img.parent().unwrap()).arg("flash").arg(img);
    if !args.contains(&"--board") {
        c.args(["--board", "rpi-4"]);
    }
    c.args(["--node", "kitchen", "--join", TOKEN, "--broker", "mqtt://10.0.0.2:1883"]).args(args).output().unwrap()
}

fn flash_ok(img: &Path, args: &[&str]) -> String {
    let out = flash(img, args);
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "flash {args:?} failed: {text}");
    text
}

fn names(img: &Path) -> Vec<String> {
    let mut c = tool("mdir", "mtools");
    c.arg("-i").arg(at(img)).args(["-b", "::/"]);
    String::from_utf8_lossy(&run(c).stdout).lines().map(|l| l.trim_start_matches("::/").to_string()).collect()
}

fn mtype(img: &Path, name: &str) -> Option<String> {
    let out = tool("mtype", "mtools").arg("-i").arg(at(img)).arg(format!("::/{name}")).output().unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn mcopy_out(img: &Path, name: &str, to: &Path) {
    let mut c = tool("mcopy", "mtools");
    c.arg("-n").arg("-i").arg(at(img)).arg(format!("::/{name}")).arg(to);
    run(c);
}

/// `fsck.fat -n` on the boot partition, cut out of the image (fsck.fat takes no offset).
fn fsck_clean(img: &Path) {
    let part = img.with_extension("boot");
    let bytes = std::fs::read(img).unwrap();
    std::fs::write(&part, &bytes[OFFSET as usize..(OFFSET + 262_144 * 512) as usize]).unwrap();
    let out = tool("fsck.fat", "dosfstools").arg("-n").arg(&part).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !text.contains("differ") && !text.contains("Fix"), "fsck.fat: {text}");
    std::fs::remove_file(part).unwrap();
}

fn runcmd(user_data: &str) -> Vec<Vec<String>> {
    let docs =
        YamlLoader::load_from_str(user_data).unwrap_or_else(|e| panic!("user-data is not YAML: {e}\n{user_data}"));
    let Yaml::Array(cmds) = &docs[0]["runcmd"] else { panic!("no runcmd: {user_data}") };
    cmds.iter()
        .map(|c| match c {
            Yaml::Array(a) => a.iter().map(|s| s.as_str().unwrap().to_string()).collect(),
            other => panic!("runcmd entry {other:?}"),
        })
        .collect()
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn trixie_gets_cloud_init_and_a_second_flash_changes_nothing_but_the_instance() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), Os::Trixie);
    // Several MB, as a real agent is: written across thousands of 512-byte clusters.
    let bin = agent(dir.path(), 183, 6 << 20);
    let out = flash_ok(&img, &["--agent-binary", bin.to_str().unwrap()]);
    assert!(out.contains("cloud-init") && !out.contains(TOKEN), "{out}");
    let files = names(&img);
    for f in ["edge-agent", "agent.toml", "edge-agent.service", "user-data", "meta-data", "cmdline.txt", "config.txt"] {
        assert!(files.iter().any(|n| n == f), "no {f} in {files:?}");
    }
    assert!(!files.iter().any(|n| n == "firstrun.sh" || n == "network-config"), "{files:?}");
    mcopy_out(&img, "edge-agent", &dir.path().join("back"));
    assert!(std::fs::read(dir.path().join("back")).unwrap() == std::fs::read(&bin).unwrap(), "the binary differs");
    let ud = mtype(&img, "user-data").unwrap();
    assert!(ud.starts_with("#cloud-config\n"));
    let cmds = runcmd(&ud);
    assert!(cmds
        .iter()
        .any(|c| c == &["install", "-m", "0755", "/boot/firmware/edge-agent", "/usr/local/bin/edge-agent"]));
    assert!(cmds.iter().any(|c| c[0] == "rm" && c.contains(&"/boot/firmware/agent.toml".to_string())));
    assert_eq!(cmds.last().unwrap(), &["systemctl", "enable", "--now", "edge-agent"]);
    let toml = mtype(&img, "agent.toml").unwrap();
    assert!(toml.contains(&format!("join = \"{TOKEN}\"")) && toml.contains("node = \"kitchen\""), "{toml}");
    let cmdline = mtype(&img, "cmdline.txt").unwrap();
    let md = mtype(&img, "meta-data").unwrap();
    let id = md.strip_prefix("instance-id: ").unwrap().trim().to_string();
    assert_ne!(id, "rpios-image");
    assert_eq!(cmdline, TRIXIE_CMDLINE.trim_end().to_string() + &format!(" ds=nocloud;i={id}\n"));
    fsck_clean(&img);

    std::thread::sleep(std::time::Duration::from_millis(5));
    flash_ok(&img, &["--agent-binary", bin.to_str().unwrap()]);
    let again = names(&img);
    assert_eq!(again.iter().filter(|n| n.starts_with("edge-agent")).count(), 2, "{again:?}");
    assert_eq!(again.len(), files.len(), "{again:?}");
    let cmdline = mtype(&img, "cmdline.txt").unwrap();
    assert_eq!(count(&cmdline, "ds=nocloud"), 1, "{cmdline}");
    assert_eq!(cmdline.lines().count(), 1);
    assert!(!cmdline.contains(&id), "a fresh instance id each flash: {cmdline}");
    assert_eq!(mtype(&img, "user-data").unwrap(), ud);
    fsck_clean(&img);
}

#[test]
fn bookworm_gets_firstrun_and_keeps_one_set_of_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), Os::Bookworm);
    let bin = agent(dir.path(), 183, 100_000);
    for _ in 0..2 {
        let out = flash_ok(&img, &["--agent-binary", bin.to_str().unwrap()]);
        assert!(out.contains("firstrun"), "{out}");
        let files = names(&img);
        assert!(files.iter().any(|n| n == "firstrun.sh"), "{files:?}");
        assert!(!files.iter().any(|n| n == "user-data" || n == "meta-data"), "{files:?}");
        let cmdline = mtype(&img, "cmdline.txt").unwrap();
        assert_eq!(
            cmdline,
            BOOKWORM_CMDLINE.trim_end().to_string()
                + " systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot \
                   systemd.unit=kernel-command-line.target\n"
        );
        let fr = mtype(&img, "firstrun.sh").unwrap();
        assert!(fr.starts_with("#!/bin/sh\n") && fr.contains("systemctl enable edge-agent") && !fr.contains(TOKEN));
        fsck_clean(&img);
    }
}

#[test]
fn format_overrides_detection_and_never_leaves_both_recipes() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), Os::Trixie);
    let bin = agent(dir.path(), 183, 10_000);
    let bin = bin.to_str().unwrap();
    let wifi = ["--wifi-ssid", "Home", "--wifi-password", "correct horse", "--wifi-country", "gb"];
    flash_ok(&img, &[&["--agent-binary", bin][..], &wifi[..]].concat());
    let nc = mtype(&img, "network-config").expect("network-config with Wi-Fi");
    let docs = YamlLoader::load_from_str(&nc).unwrap();
    assert_eq!(docs[0]["network"]["version"].as_i64(), Some(2));
    assert_eq!(
        docs[0]["network"]["wifis"]["wlan0"]["access-points"]["Home"]["password"].as_str(),
        Some("correct horse")
    );
    assert!(mtype(&img, "cmdline.txt").unwrap().contains(" cfg80211.ieee80211_regdom=GB ds=nocloud;i="));

    flash_ok(&img, &["--agent-binary", bin, "--format", "firstrun"]);
    let files = names(&img);
    assert!(files.iter().any(|n| n == "firstrun.sh") && !files.iter().any(|n| n == "network-config"), "{files:?}");
    let ud = mtype(&img, "user-data").unwrap();
    let docs = YamlLoader::load_from_str(&ud).unwrap();
    assert!(docs.first().is_none_or(|d| d["runcmd"].is_badvalue()), "cloud-init would install too: {ud}");
    let cmdline = mtype(&img, "cmdline.txt").unwrap();
    assert!(!cmdline.contains("ds=nocloud") && count(&cmdline, "systemd.run=") == 1, "{cmdline}");
    fsck_clean(&img);

    // user-data is there, so detection says cloud-init again: firstrun.sh and its tokens go.
    flash_ok(&img, &["--agent-binary", bin]);
    assert!(!names(&img).iter().any(|n| n == "firstrun.sh"));
    let cmdline = mtype(&img, "cmdline.txt").unwrap();
    assert!(!cmdline.contains("systemd.") && count(&cmdline, "ds=nocloud") == 1, "{cmdline}");
    assert!(!runcmd(&mtype(&img, "user-data").unwrap()).is_empty());
    fsck_clean(&img);
}

#[test]
fn refusals_name_the_reason_in_one_line_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), Os::Trixie);
    let before = std::fs::read(&img).unwrap();
    let x86 = agent(dir.path(), 62, 100);
    let arm = agent(dir.path(), 183, 100);
    let zeros = dir.path().join("zeros.img");
    std::fs::write(&zeros, vec![0u8; 1 << 20]).unwrap();
    let linux_only = dir.path().join("linux.img");
    std::fs::File::create(&linux_only).unwrap().set_len(16 << 20).unwrap();
    let mut sfdisk = tool("sfdisk", "fdisk");
    sfdisk.arg("-q").arg(&linux_only).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::null());
    let mut child = sfdisk.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"label: dos\nstart=2048, type=83\n").unwrap();
    assert!(child.wait().unwrap().success());
    let x86 = x86.to_str().unwrap();
    let arm = arm.to_str().unwrap();
    let missing = dir.path().join("nope").display().to_string();
    for (image, args, says) in [
        (&img, vec!["--agent-binary", x86], "built for x86_64, but board rpi-4 is aarch64"),
        (&img, vec!["--agent-binary", &missing], "No such file"),
        (&img, vec!["--agent-binary", arm, "--board", "pico-w"], "microcontroller"),
        (&img, vec!["--agent-binary", arm, "--board", "rpi-9"], "no such board"),
        (&zeros, vec!["--agent-binary", arm], "no MBR partition table"),
        (
            &linux_only,
            vec!["--agent-binary", arm],
            "no FAT32 boot partition (type 0x0b/0x0c) in the MBR; it has types 0x83",
        ),
    ] {
        let out = flash(image, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was flashed");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    // Without --agent-binary, the board's cross-build is where it is looked for.
    let out = flash(&img, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("target/aarch64-unknown-linux-gnu/release/edge-agent") && err.contains("--agent-binary"),
        "{err}"
    );
    // A dry run writes nothing either, and shows the recipe without the token.
    let out = flash(&img, &["--agent-binary", arm, "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("--- user-data") && text.contains("ds=nocloud") && text.contains("<join token>"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
    assert!(std::fs::read(&img).unwrap() == before, "the image changed");
    // --device: a path that is no block device is refused before anything is copied.
    let out = flash(&img, &["--agent-binary", arm, "--device", zeros.to_str().unwrap(), "--yes"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a block device"));
    assert!(std::fs::read(&img).unwrap() == before, "the image changed");
}

/// A throwaway root laid out as Raspberry Pi OS's: the boot partition's files (read back from the image) in
/// /boot/firmware, the directories the recipe installs into, and stubs for what needs root or a running
/// systemd (each logs its arguments).
struct Root {
    dir: tempfile::TempDir,
    stubs: PathBuf,
    log: PathBuf,
}

impl Root {
    fn new(img: &Path) -> Root {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for d in ["boot/firmware", "usr/local/bin", "etc/systemd/system", "root", "usr/lib/raspberrypi-sys-mods"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("etc/hostname"), "raspberrypi\n").unwrap();
        std::fs::write(r.join("etc/hosts"), "127.0.1.1\traspberrypi\n").unwrap();
        for name in names(img) {
            mcopy_out(img, &name, &r.join("boot/firmware").join(&name));
        }
        let stubs = r.join("stubs");
        std::fs::create_dir(&stubs).unwrap();
        let log = r.join("log");
        let stub = |path: &Path, status: u8| {
            std::fs::write(
                path,
                format!("#!/bin/sh\necho \"$(basename \"$0\") $*\" >>'{}'\nexit {status}\n", log.display()),
            )
            .unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        for name in ["systemctl", "useradd", "chown"] {
            stub(&stubs.join(name), 0);
        }
        stub(&stubs.join("getent"), 2);
        stub(&r.join("usr/lib/raspberrypi-sys-mods/imager_custom"), 0);
        Root { dir, stubs, log }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p.trim_start_matches('/'))
    }

    fn path_env(&self) -> String {
        format!("{}:{}", self.stubs.display(), std::env::var("PATH").unwrap_or_default())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn mode(&self, p: &str) -> u32 {
        std::fs::metadata(self.path(p)).unwrap_or_else(|e| panic!("{p}: {e}")).permissions().mode() & 0o777
    }

    /// What first boot leaves: the agent, its config (with the token) and unit installed, none of them left on
    /// the boot partition.
    fn assert_installed(&self, bin: &Path) {
        assert!(std::fs::read(self.path("/usr/local/bin/edge-agent")).unwrap() == std::fs::read(bin).unwrap());
        assert_eq!(self.mode("/usr/local/bin/edge-agent"), 0o755);
        assert_eq!(self.mode("/etc/edge/agent.toml"), 0o640);
        assert!(std::fs::read_to_string(self.path("/etc/edge/agent.toml")).unwrap().contains(TOKEN));
        let unit = std::fs::read_to_string(self.path("/etc/systemd/system/edge-agent.service")).unwrap();
        assert!(unit.contains("ExecStart=/usr/local/bin/edge-agent --config /etc/edge/agent.toml"), "{unit}");
        for gone in ["agent.toml", "edge-agent", "edge-agent.service", "edge-authorized-keys"] {
            assert!(!self.path("/boot/firmware").join(gone).exists(), "{gone} left on the boot partition");
        }
        let log = self.log();
        assert!(log.contains("useradd --system --user-group"), "{log}");
        assert!(log.contains(&format!("chown root:edge-agent {}", self.path("/etc/edge/agent.toml").display())));
    }
}

#[test]
fn the_cloud_init_runcmd_installs_the_agent_in_a_throwaway_root() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), Os::Trixie);
    let bin = agent(dir.path(), 183, 50_000);
    let key = dir.path().join("id.pub");
    std::fs::write(&key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE me@laptop\n").unwrap();
    flash_ok(&img, &["--agent-binary", bin.to_str().unwrap(), "--ssh-key", key.to_str().unwrap()]);
    let root = Root::new(&img);
    // cloud-init's runcmd, each argument list run as it is, with absolute paths moved under the root.
    for cmd in runcmd(&std::fs::read_to_string(root.path("/boot/firmware/user-data")).unwrap()) {
        let args: Vec<String> = cmd[1..]
            .iter()
            .map(|a| if a.starts_with('/') { root.path(a).display().to_string() } else { a.clone() })
            .collect();
        let out = Command::new(&cmd[0]).args(&args).env("PATH", root.path_env()).output().unwrap();
        assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    root.assert_installed(&bin);
    assert_eq!(root.mode("/root/.ssh"), 0o700);
    assert_eq!(
        std::fs::read_to_string(root.path("/root/.ssh/authorized_keys")).unwrap(),
        std::fs::read_to_string(&key).unwrap()
    );
    let log = root.log();
    assert!(
        log.contains("systemctl enable --now ssh") && log.ends_with("systemctl enable --now edge-agent\n"),
        "{log}"
    );
}

#[test]
fn firstrun_sh_installs_the_agent_in_a_throwaway_root_and_removes_itself() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), Os::Bookworm);
    let bin = agent(dir.path(), 183, 50_000);
    let wifi = ["--wifi-ssid", "Home Net", "--wifi-password", "it's a secret", "--wifi-country", "DE"];
    flash_ok(&img, &[&["--agent-binary", bin.to_str().unwrap(), "--hostname", "kitchen-pi"][..], &wifi[..]].concat());
    let root = Root::new(&img);
    let script = root.path("/boot/firmware/firstrun.sh");
    let out = Command::new("sh")
        .arg(&script)
        .env("EDGE_FLASH_ROOT", root.dir.path())
        .env("PATH", root.path_env())
        .output()
        .unwrap();
    assert!(out.status.success(), "firstrun.sh: {}", String::from_utf8_lossy(&out.stderr));
    root.assert_installed(&bin);
    assert!(!script.exists(), "firstrun.sh is still there");
    let cmdline = std::fs::read_to_string(root.path("/boot/firmware/cmdline.txt")).unwrap();
    assert_eq!(cmdline, BOOKWORM_CMDLINE.trim_end().to_string() + " cfg80211.ieee80211_regdom=DE\n");
    let log = root.log();
    assert!(log.contains("imager_custom set_hostname kitchen-pi"), "{log}");
    assert!(log.contains("imager_custom set_wlan Home Net it's a secret DE"), "{log}");
    assert!(log.ends_with("systemctl enable edge-agent\n"), "{log}");
}
