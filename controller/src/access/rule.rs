//! What a request needs ([`need`]) and whether a credential's grant covers it ([`Grant::permits`]). Pure.
//!
//! The rules are keyed by the router's own route template (axum's `MatchedPath`) and the path parameters as the
//! handlers decode them, so a request cannot be routed one way and judged another (no second parser of paths).
//! Every route has a rule ([`need`] returns `None` for a template it does not know, which the middleware
//! refuses): a route added without a rule is refused to everyone rather than open to anyone.

use std::fmt;

/// What a credential may do, from least to most. `Edit` includes `View`; `Admin` includes both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    View,
    Edit,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::View => "view",
            Role::Edit => "edit",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "view" => Some(Role::View),
            "edit" => Some(Role::Edit),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one credential was granted: a role, everywhere or in one namespace. An `Admin` grant is always
/// cluster-wide (creation refuses a namespaced admin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub name: String,
    pub role: Role,
    pub namespace: Option<String>,
}

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// No credential at all (`/healthz`).
    Nothing,
    /// Any valid credential (the version, module and namespace lists: nothing a team keeps from another).
    Anyone,
    /// Read anything in this namespace (its workloads, logs, events, usage).
    Read(String),
    /// Change workloads in this namespace.
    Write(String),
    /// Read across namespaces, or what belongs to no namespace (nodes, the fleet's stats and usage).
    ReadAll,
    /// Change something in some namespace the credential holds: uploading a module (content-addressed and
    /// shared; it runs only where a workload of that namespace is deployed).
    WriteSomewhere,
    /// Nodes, namespaces and quotas, join tokens, credentials, the audit trail.
    Admin,
}

impl Need {
    /// Whether the request changes state (so the audit trail records it).
    pub fn is_change(method: &str) -> bool {
        !matches!(method, "GET" | "HEAD" | "OPTIONS")
    }
}

/// What the request needs: `method`, the route `template` as registered in the router, the `ns` path parameter
/// (decoded), and the `namespace` and `for` query parameters (decoded). `None`: no rule for this route.
pub fn need(
    method: &str,
    template: &str,
    ns: Option<&str>,
    query_ns: Option<&str>,
    about: Option<&str>,
) -> Option<Need> {
    let read = method == "GET" || method == "HEAD";
    let in_ns = |n: Option<&str>, f: fn(String) -> Need| n.map_or(Need::ReadAll, |n| f(n.to_string()));
    let need = match template {
        "/healthz" => Need::Nothing,
        "/v1/version" | "/v1/namespaces" if read => Need::Anyone,
        "/v1/modules" | "/v1/modules/{sha}" if read => Need::Anyone,
        "/v1/modules" if method == "POST" => Need::WriteSomewhere,
        "/v1/stats" | "/v1/top/nodes" | "/v1/nodes" | "/v1/nodes/{name}" if read => Need::ReadAll,
        // Events about a node are the fleet's, whatever namespace is asked for.
        "/v1/events"
            if read
                && about.is_some_and(|a| {
                    !a.starts_with("workload/") && !a.starts_with("instance/") && !a.starts_with("pod/")
                }) =>
        {
            Need::ReadAll
        }
        "/v1/events" | "/v1/top/instances" | "/v1/workloads" if read => in_ns(query_ns, Need::Read),
        t if t.starts_with("/v1/namespaces/{ns}/workloads/") => {
            let ns = ns?.to_string();
            if read {
                Need::Read(ns)
            } else {
                Need::Write(ns)
            }
        }
        t if t.starts_with("/v1/nodes")
            || t.starts_with("/v1/tokens")
            || t.starts_with("/v1/credentials")
            || t == "/v1/audit"
            || t == "/v1/namespaces/{ns}" =>
        {
            Need::Admin
        }
        _ => return None,
    };
    Some(need)
}

impl Grant {
    /// `Ok` when this grant covers `need`, else the one-line reason (for the 403), naming the credential.
    pub fn permits(&self, need: &Need) -> Result<(), String> {
        let held = |ns: &str| self.namespace.as_deref().is_none_or(|own| own == ns);
        let ok = match need {
            Need::Nothing | Need::Anyone => true,
            Need::Read(ns) => held(ns),
            Need::Write(ns) => held(ns) && self.role >= Role::Edit,
            Need::ReadAll => self.namespace.is_none(),
            Need::WriteSomewhere => self.role >= Role::Edit,
            Need::Admin => self.role == Role::Admin && self.namespace.is_none(),
        };
        if ok {
            return Ok(());
        }
        let who = match &self.namespace {
            Some(ns) => format!("credential {} ({} in namespace {ns})", self.name, self.role),
            None => format!("credential {} ({})", self.name, self.role),
        };
        Err(match need {
            Need::Read(ns) => format!("{who} may not read namespace {ns}"),
            Need::Write(ns) if held(ns) => format!("{who} may not change workloads: that needs the edit role"),
            Need::Write(ns) => format!("{who} may not change namespace {ns}"),
            Need::ReadAll => match &self.namespace {
                Some(ns) => format!("{who} may read only its own namespace (-n {ns}), not across namespaces"),
                None => format!("{who} may not read this"),
            },
            Need::WriteSomewhere => format!("{who} may not upload modules: that needs the edit role"),
            Need::Admin => format!("{who} may not do this: it needs an admin credential"),
            Need::Nothing | Need::Anyone => unreachable_reason(),
        })
    }
}

/// Both needs are met by every grant, so no reason is ever asked for them; a fixed text rather than a panic.
fn unreachable_reason() -> String {
    "refused".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(role: Role, ns: Option<&str>) -> Grant {
        Grant { name: "c".into(), role, namespace: ns.map(str::to_string) }
    }

    const WL: &str = "/v1/namespaces/{ns}/workloads/{name}";

    #[test]
    fn namespaced_edit_is_held_to_its_namespace() {
        let g = grant(Role::Edit, Some("team-a"));
        let put = need("PUT", WL, Some("team-a"), None, None).unwrap();
        assert_eq!(g.permits(&put), Ok(()));
        let other = need("PUT", WL, Some("team-b"), None, None).unwrap();
        assert!(g.permits(&other).unwrap_err().contains("may not change namespace team-b"));
        let logs = need("GET", "/v1/namespaces/{ns}/workloads/{name}/logs", Some("team-b"), None, None).unwrap();
        assert!(g.permits(&logs).unwrap_err().contains("may not read namespace team-b"));
        let own_logs = need("GET", "/v1/namespaces/{ns}/workloads/{name}/logs", Some("team-a"), None, None).unwrap();
        assert_eq!(g.permits(&own_logs), Ok(()));
        let cordon = need("POST", "/v1/nodes/{name}/cordon", None, None, None).unwrap();
        assert!(g.permits(&cordon).unwrap_err().contains("admin"));
        let all = need("GET", "/v1/workloads", None, None, None).unwrap();
        assert!(g.permits(&all).unwrap_err().contains("-n team-a"));
        assert_eq!(g.permits(&need("GET", "/v1/workloads", None, Some("team-a"), None).unwrap()), Ok(()));
        assert_eq!(g.permits(&need("POST", "/v1/modules", None, None, None).unwrap()), Ok(()));
        assert!(g.permits(&need("GET", "/v1/nodes", None, None, None).unwrap()).is_err());
        assert!(g.permits(&need("PUT", "/v1/namespaces/{ns}", Some("team-a"), None, None).unwrap()).is_err());
    }

    #[test]
    fn view_reads_everything_and_changes_nothing() {
        let g = grant(Role::View, None);
        for (m, t) in [("GET", "/v1/workloads"), ("GET", "/v1/nodes"), ("GET", "/v1/stats"), ("GET", WL)] {
            assert_eq!(g.permits(&need(m, t, Some("x"), None, None).unwrap()), Ok(()), "{m} {t}");
        }
        assert!(g.permits(&need("PUT", WL, Some("x"), None, None).unwrap()).unwrap_err().contains("edit role"));
        assert!(g.permits(&need("POST", "/v1/modules", None, None, None).unwrap()).is_err());
        assert!(g.permits(&need("GET", "/v1/tokens", None, None, None).unwrap()).is_err());
        assert!(g.permits(&need("GET", "/v1/credentials", None, None, None).unwrap()).is_err());
    }

    #[test]
    fn admin_does_everything_and_nothing_is_public_but_health() {
        let g = grant(Role::Admin, None);
        for (m, t) in [("POST", "/v1/nodes/{name}/drain"), ("DELETE", "/v1/tokens/{id}"), ("GET", "/v1/audit")] {
            assert_eq!(g.permits(&need(m, t, None, None, None).unwrap()), Ok(()));
        }
        assert_eq!(need("GET", "/healthz", None, None, None), Some(Need::Nothing));
        assert_eq!(need("GET", "/v1/version", None, None, None), Some(Need::Anyone));
        // A namespaced admin (never created) would still not be a cluster admin.
        assert!(grant(Role::Admin, Some("a")).permits(&Need::Admin).is_err());
    }

    #[test]
    fn node_events_are_the_fleets() {
        let g = grant(Role::View, Some("team-a"));
        let n = need("GET", "/v1/events", None, Some("team-a"), Some("node/dev-1")).unwrap();
        assert_eq!(n, Need::ReadAll);
        assert!(g.permits(&n).is_err());
        let w = need("GET", "/v1/events", None, Some("team-a"), Some("workload/tick")).unwrap();
        assert_eq!(g.permits(&w), Ok(()));
    }

    #[test]
    fn the_routes_have_rules_and_an_unknown_one_has_none() {
        // The router's templates (`api/routes.rs`); one missing here fails closed at run time (refused to all).
        let routes = [
            ("GET", "/v1/stats"),
            ("GET", "/v1/events"),
            ("GET", "/v1/top/nodes"),
            ("GET", "/v1/top/instances"),
            ("GET", "/v1/modules/{sha}"),
            ("GET", "/v1/nodes/{name}"),
            ("DELETE", "/v1/nodes/{name}"),
            ("POST", "/v1/tokens"),
            ("GET", "/v1/tokens"),
            ("DELETE", "/v1/tokens/{id}"),
            ("POST", "/v1/nodes/{name}/uncordon"),
            ("PUT", "/v1/nodes/{name}/labels"),
            ("GET", "/v1/namespaces"),
            ("PUT", "/v1/namespaces/{ns}"),
            ("DELETE", WL),
            ("GET", "/v1/namespaces/{ns}/workloads/{name}/events"),
            ("POST", "/v1/namespaces/{ns}/workloads/{name}/undo"),
            ("POST", "/v1/credentials"),
            ("DELETE", "/v1/credentials/{name}"),
        ];
        for (m, t) in routes {
            assert!(need(m, t, Some("default"), None, None).is_some(), "no rule for {m} {t}");
        }
        assert_eq!(need("GET", "/v1/something-new", None, None, None), None);
        assert_eq!(need("DELETE", "/v1/workloads", None, None, None), None, "a method without a route");
    }
}
