//! Command-line definitions (clap). Each subcommand's behaviour lives in `cmd/`.

#[cfg(feature = "dev")]
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use edge_proto::quantity::parse_duration;

mod contexts;
mod provision;
pub use contexts::{ConfigArgs, ConfigCommand};
pub use provision::{BoardsArgs, FlashArgs, FlashFormat, InstallArgs, SshArgs, UninstallArgs};

#[derive(Parser)]
#[command(name = "edgectl", version, about = "Deploy and watch WebAssembly workloads on a fleet of edge boards")]
pub struct Cli {
    /// The controller's API: http://HOST:PORT, or HOST:PORT (http is assumed). Default: $EDGE_SERVER, else the
    /// current context's server (`edgectl config get-contexts`), else http://127.0.0.1:7700.
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Use this context of the config file instead of the current one.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace to work in [default: default]. With `create credential`: hold the credential to it.
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
    /// The bearer token to send. Default: $EDGE_TOKEN, else the token of the context edgectl talks to.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// For an https:// server: the cluster to trust, by the fingerprint the controller printed (sha256:…) or its
    /// CA file (ca.crt in its data dir). Default: $EDGE_CA, else the context's certificate-authority.
    #[arg(long, global = true, value_name = "FILE|FINGERPRINT")]
    pub certificate_authority: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a local cluster in this process: a controller with its embedded broker, and N agents.
    #[cfg(feature = "dev")]
    Dev(DevArgs),
    /// Upload a module and create or update a workload running it (an existing workload keeps what is not given).
    Deploy(DeployArgs),
    /// Create or update the workloads and namespaces of YAML manifests: `edgectl apply -f tick.yaml`.
    Apply(ApplyArgs),
    /// Show what `apply -f` would change, field by field (exit 0: nothing, 1: something, 2: error).
    Diff(FilesArgs),
    /// Set a workload's replica count (nothing else changes).
    Scale(ScaleArgs),
    /// Change one part of a workload (env, module, resources); the rest stays as it is.
    Set(SetArgs),
    /// List instances (pods), workloads, nodes, namespaces or modules, or show one: `get pods`, `get no -l
    /// zone=a`, `get workload NAME -o yaml` (a manifest `apply -f` reads back).
    Get(GetArgs),
    /// Follow, list or undo a workload's rollouts.
    Rollout(RolloutArgs),
    /// Create a namespace (or set the quota of an existing one), or an API credential: `create credential NAME
    /// [--namespace NS] [--role admin|edit|view] [--ttl 30d]` (prints its bearer token on the last line).
    Create(CreateArgs),
    /// Show one node (capacity, conditions, instances, event delivery, last outage) or workload (template,
    /// rollout, revisions, instances, recent events) in depth.
    Describe(DescribeArgs),
    /// Mark a node unschedulable: nothing new is placed on it (running instances stay).
    Cordon(NodeArgs),
    /// Make a cordoned node schedulable again.
    Uncordon(NodeArgs),
    /// Cordon a node and move its reschedulable instances to other nodes.
    Drain(NodeArgs),
    /// Set (k=v) or remove (k-) labels on a node: `edgectl label node NAME zone=a board-`.
    Label(LabelArgs),
    /// Print the log lines of a workload (every instance's, each prefixed with its instance) or of one
    /// instance: `logs tick --tail 5`, `logs tick-x7k2p -f`.
    Logs(LogsArgs),
    /// List recent lifecycle events (LAST SEEN, TYPE, OBJECT, MESSAGE), oldest first: `events`, `events --for
    /// workload/tick -w`.
    Events(EventsArgs),
    /// Delete a workload (its instances are stopped): `delete NAME`, `delete workload NAME` or `delete -f FILE`;
    /// or a node: `delete node NAME [--force]`.
    ///
    /// Deleting a node revokes its credentials (it must join again with a new token to come back) and moves its
    /// instances as their workloads' policy says (`--on-node-loss`: reschedule elsewhere, or stay and wait). A
    /// node still Ready (its agent connected and heartbeating) is refused unless --force: stop its agent first,
    /// or force it (a `drain` beforehand moves its instances in good order).
    Delete(DeleteArgs),
    /// Create, list and delete join tokens, with which new nodes join the cluster (`edge-agent --join TOKEN`).
    Token(TokenArgs),
    /// Show CPU and memory use as agents report it (every minute): `top nodes` (against allocatable), `top pods
    /// [-A]`.
    Top(TopArgs),
    /// Print the client's version, the controller's, and the agent protocol versions it speaks.
    Version(VersionArgs),
    /// Name the controllers edgectl talks to, in ~/.config/edge/config.yaml (`edgectl dev` writes a `dev`
    /// context and makes it current).
    Config(ConfigArgs),
    /// Print a shell completion script: `source <(edgectl completion bash)`.
    Completion(CompletionArgs),
    /// Install the agent on a running board over SSH (binary, agent.toml, systemd unit), start it, and wait
    /// until its node is Ready: `install --ssh pi@kitchen.local --node kitchen --join TOKEN`.
    Install(InstallArgs),
    /// Stop the agent on a board over SSH and remove what `install` put there (`--purge`: its state too).
    Uninstall(UninstallArgs),
    /// Customise a Raspberry Pi OS image (or, with --device, a card) so the board installs the agent and joins on
    /// first boot: `flash raspios.img --board rpi-4 --node kitchen --join TOKEN --broker mqtt://10.0.0.2:1883`.
    Flash(FlashArgs),
    /// List the board profiles (architecture, Rust target, engine, resources, how each is provisioned):
    /// `boards`, `boards -o json`. Names for `--board`.
    Boards(BoardsArgs),
}

#[derive(Args)]
pub struct EventsArgs {
    /// Only the events of one object: workload/NAME, node/NAME or instance/ID (pod/ID).
    #[arg(long = "for", value_name = "KIND/NAME")]
    pub about: Option<String>,
    /// Events of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// After listing, keep printing new events as they arrive.
    #[arg(short = 'w', long)]
    pub watch: bool,
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// The audit trail instead: who changed what, when (recorded API changes; needs an admin credential).
    #[arg(long, conflicts_with_all = ["about", "watch", "all_namespaces"])]
    pub audit: bool,
}

#[derive(Args)]
pub struct TopArgs {
    #[arg(value_enum)]
    pub what: TopWhat,
    /// Instances of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TopWhat {
    /// NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%: the sum over each node's instances, against allocatable.
    #[value(alias = "node", alias = "no")]
    Nodes,
    /// NAME CPU(cores) MEMORY(bytes) of each running instance.
    #[value(alias = "instance", alias = "pods", alias = "pod", alias = "po")]
    Instances,
}

#[derive(Args)]
pub struct VersionArgs {
    /// Only the client's version (no request to the controller).
    #[arg(long)]
    pub client: bool,
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Args)]
pub struct CompletionArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(feature = "dev")]
#[derive(Args)]
pub struct DevArgs {
    /// Address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub api: SocketAddr,
    /// Address of the embedded MQTT broker.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub mqtt: SocketAddr,
    /// How many local agents to start (named dev-1 … dev-N).
    #[arg(long, default_value_t = 2)]
    pub agents: u32,
    /// Where the controller and agents keep their state (default: a temporary directory removed on exit).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// CPU capacity of each agent, e.g. 500m or 1 (default: the host's CPUs split between the agents).
    #[arg(long, value_name = "CPU", value_parser = edge_proto::quantity::parse_cpu)]
    pub agent_cpu: Option<u32>,
    /// Memory capacity of each agent, e.g. 512Mi (default: the host's memory split between the agents).
    #[arg(long, value_name = "MEMORY", value_parser = edge_proto::quantity::parse_memory)]
    pub agent_memory: Option<u64>,
}

#[derive(Args)]
pub struct DeployArgs {
    /// Workload name (lowercase letters, digits and '-').
    pub name: String,
    /// Path of the WebAssembly module (a WASI preview 1 command).
    pub module: PathBuf,
    /// Number of instances (a new workload: 1).
    #[arg(long, value_name = "N")]
    pub replicas: Option<u32>,
    /// CPU request, e.g. 250m or 0.5 (a new workload: 100m).
    #[arg(long)]
    pub cpu: Option<String>,
    /// Memory request, e.g. 64Mi (a new workload: 32Mi); also the instance's memory limit unless --memory-limit is
    /// given.
    #[arg(long)]
    pub memory: Option<String>,
    /// Cap on the guest's memory (linear memories and tables), e.g. 128Mi; at least the request.
    #[arg(long)]
    pub memory_limit: Option<String>,
    /// Cap on CPU, e.g. 200m (a fifth of one core); default: no cap beyond fair sharing.
    #[arg(long)]
    pub cpu_limit: Option<String>,
    /// Stop a run that lasts longer than this, e.g. 30s or 500ms (for run-to-completion workloads; 0: never).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// A writable per-instance directory NAME:SIZE (e.g. data:16Mi), seen by the guest as /NAME (repeatable;
    /// replaces the workload's volumes). Without one the guest has no filesystem at all.
    #[arg(long = "volume", value_name = "NAME:SIZE")]
    pub volumes: Vec<String>,
    /// Environment variable K=V (repeatable; replaces the workload's environment: `set env` edits one variable).
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Argument passed to the module (repeatable; replaces the workload's arguments).
    #[arg(long = "arg", value_name = "A", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// When an instance that exited is started again (a new workload: always).
    #[arg(long, value_enum)]
    pub restart: Option<Restart>,
    /// Run only on nodes carrying this label K=V (repeatable, all must match; replaces the workload's selector).
    #[arg(long = "selector", value_name = "K=V")]
    pub selector: Vec<String>,
    /// A label K=V of the workload itself, which its instances carry too (`get pods -l app=tick`; repeatable;
    /// replaces the workload's labels; no new revision).
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
    /// When a replica's node is lost: place it elsewhere (reschedule, the default of a new workload), or keep it
    /// bound until the node returns (stay).
    #[arg(long, value_enum)]
    pub on_node_loss: Option<NodeLoss>,
    /// Return once every replica of the new revision is ready (Running for the controller's min-ready time
    /// without restarting, or Succeeded under --restart never/on-failure); fail at once if one crash-loops, keeps
    /// exiting or failed, and with the reason once --wait-timeout has passed.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, e.g. 500ms, 90s, 2m (a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub wait_timeout: Duration,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum NodeLoss {
    Reschedule,
    Stay,
}

impl NodeLoss {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeLoss::Reschedule => "reschedule",
            NodeLoss::Stay => "stay",
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Restart {
    Always,
    OnFailure,
    Never,
}

impl Restart {
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::Always => "always",
            Restart::OnFailure => "on-failure",
            Restart::Never => "never",
        }
    }
}

#[derive(Args)]
pub struct GetArgs {
    /// What to list (short names: po, wl, no, ns, mod, ev).
    #[arg(value_enum)]
    pub what: GetWhat,
    /// Show only this one (`get workload tick -o yaml` prints a manifest `apply -f` reads back).
    pub name: Option<String>,
    /// Output format: wide adds columns, name prints KIND/NAME lines.
    #[arg(short = 'o', long, value_enum, default_value_t = GetOutput::Table)]
    pub output: GetOutput,
    /// Workloads and instances of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only nodes, workloads or instances (their workload's labels) whose labels match: k=v, k!=v, k (set), !k
    /// (unset); comma-separated, all must hold.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Add a LABELS column.
    #[arg(long)]
    pub show_labels: bool,
    /// After the table, keep printing rows as they change (polling every second; Ctrl-C ends it).
    #[arg(short = 'w', long)]
    pub watch: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GetWhat {
    /// A workload's replicas: NAME READY STATUS RESTARTS AGE NODE.
    #[value(alias = "instance", alias = "pods", alias = "pod", alias = "po")]
    Instances,
    /// NAME READY UP-TO-DATE AVAILABLE AGE (-o wide: node selector and module).
    #[value(alias = "workload", alias = "wl")]
    Workloads,
    /// Capacity, allocation, AGE and VERSION (-o wide: arch, engine, board, generation, last seen, joined).
    #[value(alias = "node", alias = "no")]
    Nodes,
    #[value(alias = "namespace", alias = "ns")]
    Namespaces,
    /// Uploaded modules and their precompiled artifacts per engine target.
    #[value(alias = "module", alias = "mod")]
    Modules,
    /// Recent lifecycle events, as `edgectl events` lists them.
    #[value(alias = "event", alias = "ev")]
    Events,
    /// API credentials: NAME ROLE NAMESPACE AGE EXPIRES LAST USED (never a token).
    #[value(alias = "credential", alias = "cred")]
    Credentials,
}

/// `get`'s output formats (kubectl's).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GetOutput {
    Table,
    /// The table with more columns.
    Wide,
    Json,
    /// Workloads and namespaces as manifests (`apply -f` reads them back); anything else as YAML.
    Yaml,
    /// KIND/NAME, one a line (`edgectl get wl -o name | xargs -n1 edgectl delete`).
    Name,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    /// Workloads and namespaces as manifests (`apply -f` reads them back); anything else as YAML.
    Yaml,
}

#[derive(Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(Subcommand)]
pub enum RolloutCommand {
    /// Wait until every replica of the current revision is ready (exit 0), or fail (exit 1, with the reason) as
    /// soon as the rollout halts or a replica crash-loops, keeps exiting or failed.
    Status {
        name: String,
        /// Give up after this long, e.g. 5m, 90s (a bare number is seconds).
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// List the revisions kept for a workload and what changed in each.
    History { name: String },
    /// Replace every replica with a fresh one of the same template, as a new revision (by setting the
    /// EDGE_RESTARTED_AT environment variable to the time of the restart).
    Restart { name: String },
    /// Roll back to the previous revision (or --to-revision N).
    Undo {
        name: String,
        #[arg(long)]
        to_revision: Option<u64>,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    #[arg(value_enum)]
    pub what: CreateWhat,
    pub name: String,
    /// Most CPU the namespace's workloads may request in total (replicas × request), e.g. 2 or 1500m.
    #[arg(long)]
    pub quota_cpu: Option<String>,
    /// Most memory they may request in total, e.g. 512Mi.
    #[arg(long)]
    pub quota_memory: Option<String>,
    /// Most instances (replicas, summed over workloads).
    #[arg(long)]
    pub quota_instances: Option<u64>,
    /// A credential's role: view reads; edit also deploys, scales and deletes workloads; admin (cluster-wide)
    /// also manages nodes, namespaces, tokens and credentials.
    #[arg(long, default_value = "view", value_parser = ["admin", "edit", "view"])]
    pub role: String,
    /// A credential's lifetime (e.g. 12h, 30d); default: it does not expire.
    #[arg(long, value_parser = parse_duration)]
    pub ttl: Option<Duration>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CreateWhat {
    #[value(alias = "ns")]
    Namespace,
    /// An API credential (bearer token).
    #[value(alias = "credentials", alias = "cred")]
    Credential,
}

#[derive(Args)]
pub struct NodeArgs {
    /// The node's name.
    pub node: String,
}

#[derive(Args)]
pub struct LabelArgs {
    #[arg(value_enum)]
    pub what: DescribeWhat,
    pub node: String,
    /// K=V sets a label, K- removes one set earlier with this command.
    #[arg(required = true)]
    pub labels: Vec<String>,
}

#[derive(Args)]
pub struct DescribeArgs {
    #[arg(value_enum)]
    pub what: DescribeWhat,
    pub name: String,
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum DescribeWhat {
    #[value(alias = "nodes", alias = "no")]
    Node,
    #[value(alias = "workloads", alias = "wl")]
    Workload,
}

#[derive(Args)]
pub struct LogsArgs {
    /// A workload (`tick`, `workload/tick`) or one of its instances (`tick-x7k2p`, `instance/tick-x7k2p`).
    pub name: String,
    /// Keep printing new lines as they arrive.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines kept (of all the workload's instances together), then follow if -f.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Only lines newer than this, e.g. 30s, 5m, 2h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Start each line with when it was written (RFC 3339).
    #[arg(long)]
    pub timestamps: bool,
}

#[derive(Args)]
pub struct DeleteArgs {
    /// `NAME`, `workload NAME` or `node NAME` (not with -f).
    #[arg(num_args = 0..=2, value_name = "[KIND] NAME")]
    pub names: Vec<String>,
    /// Delete the workloads of these manifests (file, directory, or - for stdin; repeatable).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub files: Vec<String>,
    /// A workload (or node) that does not exist is not an error.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// With `delete node`: delete it even while it is Ready (its agent is cut off and its instances move).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a join token. The last line printed is the token alone (`edgectl token create | tail -n 1`); it
    /// is shown only this once.
    Create(TokenCreateArgs),
    /// List the join tokens (never their secrets): uses left, expiry, the node each is for, who joined with it.
    #[command(visible_alias = "ls")]
    List {
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Delete a join token: nobody can join with it any more (nodes that joined with it stay).
    #[command(visible_alias = "rm")]
    Delete {
        /// The token's id (the first column of `token list`).
        id: String,
    },
}

#[derive(Args)]
pub struct TokenCreateArgs {
    /// How long the token can be used, e.g. 30m, 24h, 7d.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = crate::age::parse_ttl)]
    pub ttl: Duration,
    /// How many nodes may join with it (at least 1).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_uses)]
    pub uses: u32,
    /// Only a node of this name may join with it.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// A label K=V every node joining with it gets (repeatable).
    #[arg(long = "label", value_name = "K=V", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
}

/// A usage error as one line, `error: … (see --help)`, like every other failure (clap's own rendering adds a
/// usage block and a tip over several lines).
pub fn usage_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or("error: invalid arguments").trim_end();
    format!("{first} (see --help)")
}

fn parse_uses(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(0) => Err("a token must allow at least 1 use".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a number of uses (1, 2, …)")),
    }
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("label {s:?}: expected K=V")),
    }
}

#[derive(Args)]
pub struct FilesArgs {
    /// Manifest file, directory (its .yaml, .yml and .json files), or - for stdin (repeatable).
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub files: Vec<String>,
}

#[derive(Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub files: FilesArgs,
    /// Check without storing anything: `server` (the default) asks the controller to run every check of a real
    /// apply; `client` only reads the manifests and compares them with what the controller holds.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "server", value_name = "MODE")]
    pub dry_run: Option<DryRun>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    Server,
    Client,
}

#[derive(Args)]
pub struct ScaleArgs {
    /// The workload (`tick` or `workload/tick`).
    pub name: String,
    /// The new number of instances.
    #[arg(long, value_name = "N")]
    pub replicas: u32,
}

#[derive(Args)]
pub struct SetArgs {
    #[command(subcommand)]
    pub what: SetCommand,
}

#[derive(Subcommand)]
pub enum SetCommand {
    /// Set (K=V) or remove (K-) environment variables; the others stay.
    Env {
        name: String,
        #[arg(required = true, value_name = "K=V|K-", allow_hyphen_values = true)]
        changes: Vec<String>,
    },
    /// Run another module (uploaded first if the controller lacks it).
    Module { name: String, module: PathBuf },
    /// Set the requests and limits named (at least one); the others stay.
    Resources {
        name: String,
        /// CPU request, e.g. 250m or 0.5.
        #[arg(long)]
        cpu: Option<String>,
        /// Memory request, e.g. 64Mi.
        #[arg(long)]
        memory: Option<String>,
        /// CPU cap, e.g. 200m.
        #[arg(long)]
        cpu_limit: Option<String>,
        /// Memory cap, e.g. 128Mi (at least the request).
        #[arg(long)]
        memory_limit: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::{usage_line, Cli, Command, TokenCommand};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("edgectl").chain(args.iter().copied()))
    }

    fn token(args: &[&str]) -> TokenCommand {
        match parse(args).map(|c| c.command) {
            Ok(Command::Token(t)) => t.command,
            Ok(_) => panic!("not a token command: {args:?}"),
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    #[test]
    fn token_create_parses_every_flag() {
        let TokenCommand::Create(a) =
            token(&["token", "create", "--ttl", "30s", "--uses", "2", "--node", "a", "--label", "k=v"])
        else {
            panic!("not create");
        };
        assert_eq!(a.ttl, Duration::from_secs(30));
        assert_eq!(a.uses, 2);
        assert_eq!(a.node.as_deref(), Some("a"));
        assert_eq!(a.labels, [("k".to_string(), "v".to_string())]);
    }

    #[test]
    fn token_create_defaults_to_one_use_for_a_day() {
        let TokenCommand::Create(a) = token(&["token", "create", "--label", "a=1", "--label", "b=", "--ttl", "7d"])
        else {
            panic!("not create");
        };
        assert_eq!(a.ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(a.labels, [("a".to_string(), "1".to_string()), ("b".to_string(), String::new())]);
        let TokenCommand::Create(a) = token(&["token", "create"]) else { panic!("not create") };
        assert_eq!((a.ttl, a.uses, a.node), (Duration::from_secs(86_400), 1, None));
    }

    #[test]
    fn token_create_refuses_bad_values_in_one_line() {
        for (args, says) in [
            (&["token", "create", "--uses", "0"][..], "at least 1 use"),
            (&["token", "create", "--uses", "many"][..], "not a number of uses"),
            (&["token", "create", "--ttl", "0s"][..], "never let a node join"),
            (&["token", "create", "--ttl", "soon"][..], "invalid duration"),
            (&["token", "create", "--label", "novalue"][..], "expected K=V"),
        ] {
            let Err(e) = parse(args) else { panic!("{args:?} parsed") };
            let line = usage_line(&e);
            assert!(line.starts_with("error: ") && line.ends_with("(see --help)"), "{line}");
            assert!(line.contains(says), "{args:?}: {line}");
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn token_list_and_delete_parse_with_aliases() {
        assert!(matches!(token(&["token", "list"]), TokenCommand::List { output: super::Output::Table }));
        assert!(matches!(token(&["token", "ls", "-o", "json"]), TokenCommand::List { output: super::Output::Json }));
        let TokenCommand::Delete { id } = token(&["token", "delete", "0123456789abcdef"]) else { panic!("not delete") };
        assert_eq!(id, "0123456789abcdef");
        assert!(parse(&["token", "delete"]).is_err(), "an id is required");
    }

    #[test]
    fn delete_keeps_its_forms_and_takes_node_force() {
        let delete = |args: &[&str]| match parse(args).map(|c| c.command) {
            Ok(Command::Delete(d)) => (d.names, d.files, d.force),
            _ => panic!("{args:?}"),
        };
        assert_eq!(delete(&["delete", "tick"]), (vec!["tick".to_string()], vec![], false));
        assert_eq!(delete(&["delete", "workload", "tick"]).0, ["workload", "tick"]);
        assert_eq!(delete(&["delete", "-f", "x.yaml"]).1, ["x.yaml"]);
        assert_eq!(delete(&["delete", "node", "n1", "--force"]), (vec!["node".into(), "n1".into()], vec![], true));
    }
}
