//! `edgectl`: the command-line client. Thin: parse, dispatch, print one `error: …` line on failure.
//!
//! Layout: `cli.rs` the flags (clap), `client.rs` the typed HTTP client (speaks `edge-api` only), `cmd/` one file
//! per subcommand, `watch.rs` the pure decision of when a `--wait` or `rollout status` is over and `follow.rs` the
//! polling around it, `progress.rs` bars and spinners on a terminal (none when piped), `table.rs` plain text
//! tables, `selector.rs` label selectors (`-l`), `age.rs` the spans they show (`3m12s`) and token lifetimes,
//! `config.rs` the contexts file (which controller to talk to). Only `cmd/dev.rs` (feature `dev`, on by default) links the
//! controller and the agent. `age`, `manifest` and `template` are the library half (`lib.rs`), so that the fuzz
//! targets (`fuzz/`) reach the manifest parsers; the binary uses them as `crate::manifest` all the same.

mod agent_files;
mod cli;
mod client;
mod cmd;
mod config;
mod flash;
mod follow;
mod install;
mod module;
mod progress;
mod selector;
mod table;
mod watch;

use edgectl::{age, manifest, template};

use clap::error::ErrorKind;
use clap::Parser;

use cli::{Cli, Command};

#[tokio::main]
async fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    #[cfg(feature = "dev")]
    let dev = matches!(cli.command, Command::Dev(_));
    #[cfg(not(feature = "dev"))]
    let dev = false;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            // The dev cluster logs what it does; client commands stay quiet.
            if dev { "info,rumqttd=warn" } else { "warn" }.parse().expect("static filter")
        }))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // `diff` exits 1 when something differs, so its errors exit 2 (as `kubectl diff` does).
    let failure = if matches!(cli.command, Command::Diff(_)) { 2 } else { 1 };
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(failure);
    }
}

/// Help and version go out as clap writes them; a usage error is one `error: …` line like every other failure
/// (clap's own rendering adds a usage block and a tip over several lines).
fn usage_error(e: clap::Error) -> ! {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            e.exit()
        }
        _ => {
            eprintln!("{}", cli::usage_line(&e));
            std::process::exit(2);
        }
    }
}

/// Whether a command talks to a controller, so needs its address (and the config file, when neither `--server`
/// nor `EDGE_SERVER` gives it): the others run whatever the file holds.
fn talks_to_controller(command: &Command) -> bool {
    match command {
        #[cfg(feature = "dev")]
        Command::Dev(_) => false,
        Command::Config(_) | Command::Completion(_) | Command::Uninstall(_) | Command::Boards(_) => false,
        Command::Version(v) => !v.client,
        _ => true,
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (server, token, ca) = if talks_to_controller(&cli.command) {
        let env = std::env::var("EDGE_SERVER").ok();
        let env_token = std::env::var("EDGE_TOKEN").ok();
        let file = config::path();
        let target = config::resolve(
            cli.server.as_deref(),
            env.as_deref(),
            cli.context.as_deref(),
            file.as_deref(),
            cli.token.as_deref(),
            env_token.as_deref(),
        )?;
        let ca = cli
            .certificate_authority
            .clone()
            .or_else(|| std::env::var("EDGE_CA").ok().filter(|c| !c.trim().is_empty()))
            .or(target.certificate_authority);
        (target.server, target.token, ca)
    } else {
        (config::DEFAULT_SERVER.to_string(), None, None)
    };
    let client = client::Client::connect(&server, token, ca.as_deref())?;
    let ns = cli.namespace.as_deref().unwrap_or("default");
    match cli.command {
        #[cfg(feature = "dev")]
        Command::Dev(args) => cmd::dev::run(args).await,
        Command::Deploy(args) => cmd::deploy::run(&client, ns, args).await,
        Command::Apply(args) => cmd::apply::apply(&client, ns, &args.files.files, args.dry_run).await,
        Command::Diff(args) => {
            if cmd::apply::diff(&client, ns, &args.files).await? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Scale(args) => cmd::edit::scale(&client, ns, &args.name, args.replicas).await,
        Command::Set(args) => cmd::edit::set(&client, ns, args.what).await,
        Command::Get(args) => cmd::get::run(&client, ns, args).await,
        Command::Rollout(args) => cmd::rollout::run(&client, ns, args.command).await,
        Command::Create(args) => match args.what {
            cli::CreateWhat::Namespace => cmd::create::namespace(&client, &args).await,
            cli::CreateWhat::Credential => {
                let ns = cli.namespace.as_deref();
                cmd::credential::create(&client, &args.name, ns, &args.role, args.ttl).await
            }
        },
        Command::Describe(args) => match args.what {
            cli::DescribeWhat::Node => cmd::describe::node(&client, &args.name, args.output).await,
            cli::DescribeWhat::Workload => cmd::describe::workload(&client, ns, &args.name, args.output).await,
        },
        Command::Cordon(a) => cmd::node::run(&client, &a.node, cmd::node::Op::Cordon).await,
        Command::Uncordon(a) => cmd::node::run(&client, &a.node, cmd::node::Op::Uncordon).await,
        Command::Drain(a) => cmd::node::run(&client, &a.node, cmd::node::Op::Drain).await,
        Command::Label(a) => cmd::node::label(&client, &a.node, &a.labels).await,
        Command::Logs(args) => cmd::logs::run(&client, ns, &args).await,
        Command::Events(args) if args.audit => cmd::credential::audit(&client, args.output).await,
        Command::Events(args) => cmd::events::run(&client, ns, &args).await,
        Command::Top(args) => cmd::top::run(&client, ns, &args).await,
        Command::Version(args) => cmd::version::run(&client, &args).await,
        Command::Config(args) => cmd::config::run(
            args.command,
            cli.server.as_deref(),
            cli.token.as_deref(),
            cli.certificate_authority.as_deref(),
        ),
        Command::Completion(args) => {
            // Into a buffer first: clap_complete panics on a write error (`| head` closing the pipe).
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut <Cli as clap::CommandFactory>::command(), "edgectl", &mut script);
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
            Ok(())
        }
        Command::Delete(args) => cmd::delete::run(&client, ns, args).await,
        Command::Token(args) => cmd::token::run(&client, args.command).await,
        Command::Install(args) => cmd::install::install(&client, &server, args).await,
        Command::Uninstall(args) => cmd::install::uninstall(args).await,
        Command::Flash(args) => cmd::flash::run(&server, args),
        Command::Boards(args) => cmd::boards::run(args.output),
    }
}
