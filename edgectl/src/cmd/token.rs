//! `edgectl token create|list|delete`: the join tokens with which new nodes join the cluster.
//!
//! `create` prints the token alone on its last line, so scripts can take it with `tail -n 1`; the controller
//! shows its secret only in that one answer, `list` never does.

use std::time::Duration;

use anyhow::Result;
use edge_api::{TokenCreated, TokenRequest, TokenView};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::age;
use crate::cli::{Output, TokenCommand, TokenCreateArgs};
use crate::client::Client;
use crate::table::Table;

pub async fn run(client: &Client, command: TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create(args) => {
            let created = client.create_token(&request(&args)).await?;
            print!("{}", created_text(&created, args.ttl));
        }
        TokenCommand::List { output } => {
            let tokens = client.tokens().await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&tokens)?),
                Output::Yaml => print!("{}", crate::manifest::render::json(&serde_json::to_value(&tokens)?)),
                Output::Table => print!("{}", tokens_table(&tokens, OffsetDateTime::now_utc())),
            }
        }
        TokenCommand::Delete { id } => {
            client.delete_token(&id).await?;
            println!("token/{id} deleted");
        }
    }
    Ok(())
}

pub fn request(args: &TokenCreateArgs) -> TokenRequest {
    TokenRequest {
        ttl_ms: Some(u64::try_from(args.ttl.as_millis()).unwrap_or(u64::MAX)),
        uses: Some(args.uses),
        node: args.node.clone(),
        labels: args.labels.iter().cloned().collect(),
    }
}

/// A summary line, a reminder that the token is shown once, and the token alone as the last line. The lifetime
/// shown is the controller's (`expires - created`, which it may have capped), else the one asked for.
fn created_text(c: &TokenCreated, asked: Duration) -> String {
    let v = &c.view;
    let uses = if v.uses == 1 { "1 use".to_string() } else { format!("{} uses", v.uses) };
    let node = v.node.as_ref().map_or("any node".to_string(), |n| format!("node {n}"));
    let parse = |s: &str| OffsetDateTime::parse(s, &Rfc3339).ok();
    let lifetime = match (parse(&v.created), parse(&v.expires)) {
        (Some(c), Some(e)) => Duration::try_from(e - c).unwrap_or(asked),
        _ => asked,
    };
    let mut summary =
        format!("token/{} created: {uses}, {node}, expires in {} ({})", v.id, age::format_ttl(lifetime), v.expires);
    if !v.labels.is_empty() {
        summary.push_str(&format!(", labels {}", labels(v)));
    }
    format!(
        "{summary}\ncluster {}\nshown only this once; join a node with `edge-agent --join TOKEN`:\n{}\n",
        c.cluster_fingerprint, c.token
    )
}

fn labels(v: &TokenView) -> String {
    v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn tokens_table(tokens: &[TokenView], now: OffsetDateTime) -> String {
    if tokens.is_empty() {
        return "No join tokens.\n".to_string();
    }
    let mut t = Table::new(["ID", "USES-LEFT", "EXPIRES", "NODE", "LABELS", "JOINED"]);
    let or_dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
    for v in tokens {
        t.row([
            v.id.clone(),
            format!("{}/{}", v.uses_left, v.uses),
            if v.expired { "expired".to_string() } else { age::until(&v.expires, now) },
            v.node.clone().unwrap_or_else(|| "-".into()),
            or_dash(labels(v)),
            or_dash(v.joined.join(",")),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(json: serde_json::Value) -> TokenView {
        serde_json::from_value(json).unwrap()
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse("2025-06-01T12:00:00Z", &Rfc3339).unwrap()
    }

    #[test]
    fn empty_list_says_so() {
        assert_eq!(tokens_table(&[], now()), "No join tokens.\n");
    }

    #[test]
    fn list_shows_uses_expiry_node_labels_and_joiners() {
        let tokens = [
            view(serde_json::json!({
                "id": "0123456789abcdef", "created": "2025-06-01T11:00:00Z", "expires": "2025-06-02T11:00:00Z",
                "expired": false, "uses_left": 1, "uses": 1, "node": null, "labels": {}, "joined": []
            })),
            view(serde_json::json!({
                "id": "fedcba9876543210", "created": "2025-06-01T11:00:00Z", "expires": "2025-06-01T12:03:12Z",
                "expired": false, "uses_left": 0, "uses": 2, "node": "dev-1",
                "labels": {"zone": "a", "board": "pi"}, "joined": ["dev-1", "dev-2"]
            })),
            view(serde_json::json!({
                "id": "00000000000000aa", "created": "2025-05-01T11:00:00Z", "expires": "2025-05-02T11:00:00Z",
                "expired": true, "uses_left": 3, "uses": 3, "node": null, "labels": {}, "joined": []
            })),
        ];
        assert_eq!(
            tokens_table(&tokens, now()),
            "\
ID                 USES-LEFT   EXPIRES   NODE    LABELS            JOINED
0123456789abcdef   1/1         23h       -       -                 -
fedcba9876543210   0/2         3m12s     dev-1   board=pi,zone=a   dev-1,dev-2
00000000000000aa   3/3         expired   -       -                 -
"
        );
    }

    #[test]
    fn created_ends_with_the_token_alone() {
        let created: TokenCreated = serde_json::from_value(serde_json::json!({
            "token": "EJ1abc::0123456789abcdef.s3cret",
            "cluster_fingerprint": "sha256:abc",
            "view": {
                "id": "0123456789abcdef", "created": "2025-06-01T12:00:00Z", "expires": "2025-06-08T12:00:00Z",
                "expired": false, "uses_left": 2, "uses": 2, "node": "a", "labels": {"k": "v"}, "joined": []
            }
        }))
        .unwrap();
        let args = TokenCreateArgs {
            ttl: Duration::from_secs(7 * 86_400),
            uses: 2,
            node: Some("a".into()),
            labels: vec![("k".into(), "v".into())],
        };
        let text = created_text(&created, Duration::from_secs(60));
        assert_eq!(
            text,
            "\
token/0123456789abcdef created: 2 uses, node a, expires in 7d (2025-06-08T12:00:00Z), labels k=v
cluster sha256:abc
shown only this once; join a node with `edge-agent --join TOKEN`:
EJ1abc::0123456789abcdef.s3cret
"
        );
        // What scripts do: `tail -n 1 | awk '{print $NF}'`.
        let last = text.lines().last().unwrap();
        assert_eq!(last.split_whitespace().last(), Some("EJ1abc::0123456789abcdef.s3cret"));

        let req = request(&args);
        assert_eq!((req.ttl_ms, req.uses, req.node.as_deref()), (Some(604_800_000), Some(2), Some("a")));
        assert_eq!(req.labels.get("k").map(String::as_str), Some("v"));
    }
}
