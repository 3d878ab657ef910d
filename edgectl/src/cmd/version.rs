//! `edgectl version [--client] [-o json|yaml]`: this client's version, the controller's, and the agent protocol
//! versions the controller speaks. The client's line comes first, so it is printed even when the controller
//! cannot be reached (then the error follows, as one line).

use anyhow::Result;
use edge_api::VersionView;
use serde::Serialize;

use crate::cli::{Output, VersionArgs};
use crate::client::Client;

const CLIENT: &str = env!("CARGO_PKG_VERSION");

#[derive(Serialize)]
struct Versions {
    client: &'static str,
    /// `None` with `--client`, or from a controller too old to say.
    server: Option<VersionView>,
}

pub async fn run(client: &Client, args: &VersionArgs) -> Result<()> {
    if args.output == Output::Table {
        println!("Client Version: {CLIENT}");
        if args.client {
            return Ok(());
        }
        print!("{}", server_lines(client.version().await?.as_ref()));
        return Ok(());
    }
    let server = if args.client { None } else { client.version().await? };
    let v = serde_json::to_value(Versions { client: CLIENT, server })?;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&v)?),
        _ => print!("{}", crate::manifest::render::json(&v)),
    }
    Ok(())
}

fn server_lines(server: Option<&VersionView>) -> String {
    match server {
        Some(v) => format!(
            "Server Version: {}\nProtocol: {} (agents of protocol {} to {} are understood)\n",
            v.version, v.protocol, v.min_protocol, v.protocol
        ),
        None => "Server Version: unknown (the controller predates GET /v1/version)\n".to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_lines_name_version_and_protocols() {
        let v = edge_api::VersionView { version: "0.1.0".into(), protocol: 3, min_protocol: 2 };
        assert_eq!(
            super::server_lines(Some(&v)),
            "Server Version: 0.1.0\nProtocol: 3 (agents of protocol 2 to 3 are understood)\n"
        );
        assert!(super::server_lines(None).starts_with("Server Version: unknown"));
    }
}
