//! Readiness for systemd (`Type=notify`): `READY=1` once the agent is up, `STOPPING=1` when it shuts down.
//!
//! The sd_notify protocol is one datagram per message to the unix socket named by `$NOTIFY_SOCKET`: a path, or
//! an abstract socket when it starts with '@'. Without the variable (not under systemd, or `Type=simple`) the
//! notifier does nothing. Failures to notify are logged, never fatal: the agent works the same without systemd.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

/// Where the notifications go.
#[derive(Debug)]
enum Target {
    Path(PathBuf),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Abstract(Vec<u8>),
}

/// A connection to systemd's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    target: Target,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names, or `None` when it is unset or empty.
    pub fn from_env() -> io::Result<Option<Notifier>> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(name) if !name.is_empty() => Notifier::new(&name.to_string_lossy()).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier for the socket `name`: a path, or `@name` for an abstract socket.
    pub fn new(name: &str) -> io::Result<Notifier> {
        let target = match name.strip_prefix('@') {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Some(abstract_name) => Target::Abstract(abstract_name.as_bytes().to_vec()),
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            Some(_) => return Err(io::Error::new(io::ErrorKind::Unsupported, "abstract sockets are Linux-only")),
            None => Target::Path(PathBuf::from(name)),
        };
        Ok(Notifier { socket: UnixDatagram::unbound()?, target })
    }

    /// Sends one notification (`READY=1`, `STOPPING=1`, `STATUS=…`).
    pub fn send(&self, state: &str) -> io::Result<()> {
        match &self.target {
            Target::Path(path) => self.socket.send_to(state.as_bytes(), path)?,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Target::Abstract(name) => {
                #[cfg(target_os = "android")]
                use std::os::android::net::SocketAddrExt;
                #[cfg(target_os = "linux")]
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                self.socket.send_to_addr(state.as_bytes(), &addr)?
            }
        };
        Ok(())
    }
}

/// Sends `state` if `notifier` is set, logging (not returning) a failure.
pub fn notify(notifier: Option<&Notifier>, state: &str) {
    if let Some(n) = notifier {
        if let Err(e) = n.send(state) {
            tracing::warn!("systemd notification {state:?} not sent: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reaches_a_socket_named_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let systemd = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(path.to_str().unwrap()).unwrap();
        n.send("READY=1").unwrap();
        notify(Some(&n), "STOPPING=1");
        let mut buf = [0u8; 64];
        let len = systemd.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        let len = systemd.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STOPPING=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn ready_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("edge-agent-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let systemd = UnixDatagram::bind_addr(&addr).unwrap();
        Notifier::new(&format!("@{name}")).unwrap().send("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let len = systemd.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
    }

    #[test]
    fn a_missing_socket_is_an_error_to_log_not_a_panic() {
        let n = Notifier::new("/nonexistent/notify").unwrap();
        assert!(n.send("READY=1").is_err());
        notify(Some(&n), "READY=1");
        notify(None, "READY=1");
    }
}
