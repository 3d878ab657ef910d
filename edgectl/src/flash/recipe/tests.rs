use yaml_rust2::{Yaml, YamlLoader};

use super::*;

const TRIXIE: &str =
    "console=serial0,115200 console=tty1 root=PARTUUID=deadbeef-02 rootfstype=ext4 fsck.repair=yes rootwait resize\n";

fn settings() -> Settings {
    Settings {
        node: "kitchen".into(),
        join: "edge1.abc\"def".into(),
        broker: "mqtt://10.0.0.2:1883".into(),
        board: "rpi-4".into(),
        hostname: None,
        ssh_key: None,
        wifi: None,
        unit_user: unit_user(SHIPPED_UNIT),
    }
}

fn wifi() -> Wifi {
    Wifi { ssid: "Home \"Net\"".into(), password: "it's s3cret: yes".into(), country: "GB".into() }
}

fn runcmd(user_data: &str) -> Vec<Vec<String>> {
    let docs = YamlLoader::load_from_str(user_data).expect("user-data is YAML");
    let Yaml::Array(cmds) = &docs[0]["runcmd"] else { panic!("no runcmd list: {user_data}") };
    cmds.iter()
        .map(|c| match c {
            Yaml::Array(args) => args.iter().map(|a| a.as_str().expect("a string argument").to_string()).collect(),
            other => panic!("a runcmd entry that is not an argument list: {other:?}"),
        })
        .collect()
}

#[test]
fn agent_toml_has_one_field_per_flag_and_quotes_values() {
    let t = agent_toml(&settings());
    let v: toml::Table = t.parse().expect("agent.toml parses");
    assert_eq!(v["node"].as_str(), Some("kitchen"));
    assert_eq!(v["join"].as_str(), Some("edge1.abc\"def"));
    assert_eq!(v["broker"].as_str(), Some("mqtt://10.0.0.2:1883"));
    assert_eq!(v["data"].as_str(), Some(DATA_DIR));
    assert_eq!(v["board"].as_str(), Some("rpi-4"));
    assert_eq!(v.len(), 5);
}

#[test]
fn the_unit_user_is_read_from_the_unit() {
    assert_eq!(unit_user(SHIPPED_UNIT).as_deref(), Some("edge-agent"));
    assert_eq!(unit_user("[Service]\nExecStart=/x\n"), None);
    assert_eq!(unit_user("[Service]\nUser=root\n"), None);
    assert_eq!(unit_user("[Service]\nDynamicUser=yes\nUser=edge\n"), None);
}

#[test]
fn user_data_is_cloud_config_whose_runcmd_installs_the_agent() {
    let mut s = settings();
    s.hostname = Some("kitchen-pi".into());
    let ud = user_data(&s);
    assert!(ud.starts_with("#cloud-config\n"), "{ud}");
    let docs = YamlLoader::load_from_str(&ud).unwrap();
    assert_eq!(docs[0]["hostname"].as_str(), Some("kitchen-pi"));
    let cmds = runcmd(&ud);
    let has = |want: &[&str]| cmds.iter().any(|c| c == want);
    assert!(cmds[0][2].contains("useradd --system") && cmds[0][2].contains("edge-agent"), "{cmds:?}");
    assert!(has(&["install", "-m", "0755", "/boot/firmware/edge-agent", "/usr/local/bin/edge-agent"]), "{cmds:?}");
    assert!(has(&["install", "-m", "0640", "/boot/firmware/agent.toml", "/etc/edge/agent.toml"]));
    assert!(has(&["chown", "root:edge-agent", "/etc/edge/agent.toml"]));
    let mut root = s.clone();
    root.unit_user = None;
    let cmds = runcmd(&user_data(&root));
    assert!(cmds.iter().any(|c| c == &["install", "-m", "0600", "/boot/firmware/agent.toml", "/etc/edge/agent.toml"]));
    assert!(!cmds.iter().any(|c| c[0] == "chown" || c.iter().any(|a| a.contains("useradd"))), "{cmds:?}");
    assert!(has(&["install", "-m", "0644", "/boot/firmware/edge-agent.service", UNIT_PATH]));
    assert!(has(&[
        "rm",
        "-f",
        "/boot/firmware/agent.toml",
        "/boot/firmware/edge-agent",
        "/boot/firmware/edge-agent.service"
    ]));
    assert_eq!(cmds.last().unwrap(), &["systemctl", "enable", "--now", "edge-agent"]);
    // Removing the token comes before starting anything.
    let rm = cmds.iter().position(|c| c[0] == "rm").unwrap();
    assert!(rm < cmds.iter().position(|c| c[0] == "systemctl").unwrap());
    assert!(!ud.contains("ssh"), "no key, no ssh: {ud}");
    assert!(!ud.contains(&s.join), "the token is only in agent.toml");
}

#[test]
fn an_ssh_key_is_installed_for_root_and_ssh_enabled() {
    let mut s = settings();
    s.ssh_key = Some("ssh-ed25519 AAAA me@laptop\n".into());
    let cmds = runcmd(&user_data(&s));
    assert!(cmds.contains(&vec![
        "install".into(),
        "-m".into(),
        "0600".into(),
        format!("{BOOT}/{SSH_KEY}"),
        "/root/.ssh/authorized_keys".into()
    ]));
    assert!(cmds.contains(&vec!["systemctl".into(), "enable".into(), "--now".into(), "ssh".into()]));
    let rm = cmds.iter().find(|c| c[0] == "rm").unwrap();
    assert!(rm.contains(&format!("{BOOT}/{SSH_KEY}")));
    let fr = firstrun(&s);
    assert!(fr.contains("systemctl enable ssh\n") && !fr.contains("--now"), "{fr}");
}

#[test]
fn network_config_is_netplan_v2_with_the_wifi() {
    let nc = network_config(&wifi());
    let docs = YamlLoader::load_from_str(&nc).expect("network-config is YAML");
    let n = &docs[0]["network"];
    assert_eq!(n["version"].as_i64(), Some(2));
    let w = &n["wifis"]["wlan0"];
    assert_eq!(w["regulatory-domain"].as_str(), Some("GB"));
    let Yaml::Hash(aps) = &w["access-points"] else { panic!("{nc}") };
    let (ssid, ap) = aps.iter().next().unwrap();
    assert_eq!(ssid.as_str(), Some("Home \"Net\""));
    assert_eq!(ap["password"].as_str(), Some("it's s3cret: yes"));
    assert_eq!(n["ethernets"]["eth0"]["dhcp4"].as_bool(), Some(true));
}

#[test]
fn firstrun_is_rpi_imagers_form() {
    let mut s = settings();
    s.hostname = Some("kitchen".into());
    s.wifi = Some(wifi());
    let fr = firstrun(&s);
    assert!(fr.starts_with("#!/bin/sh\n"));
    assert!(fr.contains("\nset +e\n"));
    assert!(fr.contains("imager_custom set_hostname kitchen\n"), "{fr}");
    assert!(fr.contains("install -m 0755 \"$R\"/boot/firmware/edge-agent \"$R\"/usr/local/bin/edge-agent\n"), "{fr}");
    assert!(fr.contains("imager_custom set_wlan 'Home \"Net\"' 'it'\\''s s3cret: yes' GB\n"), "{fr}");
    assert!(fr.contains("systemctl enable edge-agent\n"));
    assert!(fr.ends_with(
        "rm -f \"$R\"/boot/firmware/firstrun.sh\nsed -i 's| systemd.run.*||g' \"$R\"/boot/firmware/cmdline.txt\nexit 0\n"
    ));
    assert!(!fr.contains(&s.join));
}

#[test]
fn cmdline_gets_one_set_of_tokens_however_often_it_is_edited() {
    let once = edit_cmdline(TRIXIE, Format::CloudInit, "edgectl-kitchen-1", None);
    assert_eq!(once, TRIXIE.trim_end().to_string() + " ds=nocloud;i=edgectl-kitchen-1\n");
    let twice = edit_cmdline(&once, Format::CloudInit, "edgectl-kitchen-2", None);
    assert_eq!(twice, TRIXIE.trim_end().to_string() + " ds=nocloud;i=edgectl-kitchen-2\n");
    assert_eq!(twice.lines().count(), 1);
    // Switching recipe leaves only the new one's tokens.
    let fr = edit_cmdline(&twice, Format::Firstrun, "x", Some("GB"));
    assert_eq!(
        fr,
        TRIXIE.trim_end().to_string()
            + " cfg80211.ieee80211_regdom=GB systemd.run=/boot/firmware/firstrun.sh \
               systemd.run_success_action=reboot systemd.unit=kernel-command-line.target\n"
    );
    assert_eq!(edit_cmdline(&fr, Format::Firstrun, "x", Some("GB")), fr);
    let back = edit_cmdline(&fr, Format::CloudInit, "y", None);
    assert!(!back.contains("systemd.") && back.contains("cfg80211.ieee80211_regdom=GB ds=nocloud;i=y\n"), "{back}");
    // rpi-imager's own tokens (its /boot/firstrun.sh) go too; two lines become one.
    let imager = "a b systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target\nc\n";
    assert_eq!(edit_cmdline(imager, Format::CloudInit, "z", None), "a b c ds=nocloud;i=z\n");
}

#[test]
fn the_plan_writes_one_recipe_and_cleans_up_the_other() {
    let s = settings();
    let trixie = Existing { cmdline: TRIXIE.into(), user_data: Some("#cloud-config\n".into()), ..Existing::default() };
    let p = plan(Format::CloudInit, &s, SHIPPED_UNIT, &trixie, "id-1");
    let names: Vec<&str> = p.writes.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, [AGENT_TOML, UNIT, USER_DATA, META_DATA, CMDLINE]);
    assert_eq!(p.removes, [SSH_KEY]);
    assert_eq!(p.writes[3].1, "instance-id: id-1\n");

    // The same card flashed again with Wi-Fi, then without: network-config comes and goes.
    let mut w = s.clone();
    w.wifi = Some(wifi());
    let p = plan(Format::CloudInit, &w, SHIPPED_UNIT, &trixie, "id-2");
    let (_, nc) = p.writes.iter().find(|(n, _)| *n == NETWORK_CONFIG).expect("network-config with Wi-Fi");
    let again = Existing { network_config: Some(nc.clone()), ..trixie.clone() };
    assert!(plan(Format::CloudInit, &s, SHIPPED_UNIT, &again, "id-3").removes.contains(&NETWORK_CONFIG));
    // The image's own network-config stays.
    let own = Existing { network_config: Some("network: {version: 2}\n".into()), ..trixie.clone() };
    assert!(!plan(Format::CloudInit, &s, SHIPPED_UNIT, &own, "id-4").removes.contains(&NETWORK_CONFIG));

    // Bookworm: firstrun, no cloud-init files; an earlier cloud-init flash of ours is neutralised.
    let bookworm = Existing { cmdline: TRIXIE.into(), ..Existing::default() };
    let p = plan(Format::Firstrun, &s, SHIPPED_UNIT, &bookworm, "id-5");
    let names: Vec<&str> = p.writes.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, [AGENT_TOML, UNIT, FIRSTRUN, CMDLINE]);
    let flashed = Existing { user_data: Some(user_data(&s)), ..bookworm.clone() };
    let p = plan(Format::Firstrun, &s, SHIPPED_UNIT, &flashed, "id-6");
    let (_, ud) = p.writes.iter().find(|(n, _)| *n == USER_DATA).unwrap();
    assert!(runcmd_absent(ud), "{ud}");
    // And back: the firstrun.sh goes.
    let fr = Existing { firstrun: Some(firstrun(&s)), ..trixie };
    assert!(plan(Format::CloudInit, &s, SHIPPED_UNIT, &fr, "id-7").removes.contains(&FIRSTRUN));
}

fn runcmd_absent(ud: &str) -> bool {
    YamlLoader::load_from_str(ud).map(|d| d.first().is_none_or(|d| d["runcmd"].is_badvalue())).unwrap_or(false)
}

#[test]
fn detection_follows_user_data() {
    assert_eq!(Format::detect(true), Format::CloudInit);
    assert_eq!(Format::detect(false), Format::Firstrun);
}

#[test]
fn quoting() {
    assert_eq!(shell_quote("abc-1"), "abc-1");
    assert_eq!(shell_quote("a b"), "'a b'");
    assert_eq!(shell_quote("it's"), "'it'\\''s'");
    assert_eq!(shell_quote(""), "''");
    assert_eq!(yaml_string("a: \"b\"\n"), "\"a: \\\"b\\\"\\n\"");
}
