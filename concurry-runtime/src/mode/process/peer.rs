//! Who is at the other end of a worker socket, as the kernel recorded it (Linux's
//! `SO_PEERCRED`): the check both sides make before they trust a byte of the handshake.
//!
//! The kernel takes the credentials when the peer connects (or, for the child's view of the
//! parent's socket, when the parent listens): a process cannot lie about them.

use std::os::unix::net::UnixStream;

/// A process at the other end of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer {
    pub(crate) pid: u32,
    pub(crate) uid: u32,
}

/// Why a connection was not trusted, and who made it (if the kernel said).
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) peer: Option<Peer>,
    pub(crate) why: String,
}

impl Refusal {
    /// The peer's pid and uid for a log line (`unknown` where the kernel did not say).
    pub(crate) fn who(&self) -> (String, String) {
        self.peer.map_or_else(
            || ("unknown".into(), "unknown".into()),
            |p| (p.pid.to_string(), p.uid.to_string()),
        )
    }
}

/// Checks that the process at the other end of `stream` is process `pid` (named `whom` in
/// the refusal) running as this process's user. Returns the peer, or `None` where the
/// platform has no peer credentials (outside Linux: the secret alone guards the socket).
pub(crate) fn verify(stream: &UnixStream, pid: u32, whom: &str) -> Result<Option<Peer>, Refusal> {
    let Some((peer, own_uid)) = os::credentials(stream).map_err(|e| Refusal {
        peer: None,
        why: format!("its credentials could not be read: {e}"),
    })?
    else {
        return Ok(None);
    };
    check(peer, Peer { pid, uid: own_uid }, whom).map_err(|why| Refusal {
        peer: Some(peer),
        why,
    })?;
    Ok(Some(peer))
}

/// Why `peer` is not `want`, if it is not.
pub(crate) fn check(peer: Peer, want: Peer, whom: &str) -> Result<(), String> {
    if peer.uid != want.uid {
        return Err(format!(
            "it runs as uid {}, not as this process's uid {}",
            peer.uid, want.uid
        ));
    }
    if peer.pid != want.pid {
        return Err(format!(
            "it comes from process {}, not from {whom} {}",
            peer.pid, want.pid
        ));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
mod os {
    use super::Peer;
    use std::os::unix::net::UnixStream;

    /// The peer of `stream` and this process's uid.
    pub(super) fn credentials(stream: &UnixStream) -> std::io::Result<Option<(Peer, u32)>> {
        use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
        let cred = getsockopt(stream, PeerCredentials)?;
        let peer = Peer {
            // 0 when the peer's pid is not visible from our pid namespace: never our child.
            pid: u32::try_from(cred.pid()).unwrap_or(0),
            uid: cred.uid(),
        };
        Ok(Some((peer, nix::unistd::getuid().as_raw())))
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    use super::Peer;
    use std::os::unix::net::UnixStream;

    /// No `SO_PEERCRED` here.
    pub(super) fn credentials(_: &UnixStream) -> std::io::Result<Option<(Peer, u32)>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_user_or_another_process_is_refused_with_both_named() {
        let want = Peer { pid: 40, uid: 1000 };
        assert_eq!(check(want, want, "worker process"), Ok(()));
        let other_user = check(Peer { pid: 40, uid: 0 }, want, "worker process").unwrap_err();
        assert!(
            other_user.contains("uid 0") && other_user.contains("uid 1000"),
            "{other_user}"
        );
        let other_process = check(Peer { pid: 41, uid: 1000 }, want, "worker process").unwrap_err();
        assert!(
            other_process.contains("process 41") && other_process.contains("worker process 40"),
            "{other_process}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_socket_pair_sees_this_process_as_its_peer() {
        let (a, _b) = UnixStream::pair().unwrap();
        let me = std::process::id();
        let peer = verify(&a, me, "the test")
            .unwrap()
            .expect("Linux has SO_PEERCRED");
        assert_eq!(peer.pid, me);
        let refusal = verify(&a, me + 1, "the worker process").unwrap_err();
        assert_eq!(refusal.peer, Some(peer));
        assert!(
            refusal.why.contains(&format!("process {me},")),
            "{}",
            refusal.why
        );
    }

    /// A child started by another process than the one listening on its socket (here: a
    /// shell in between) does not send that listener its secret.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_child_tells_its_secret_only_to_its_parent() {
        use super::super::{env, parent};
        use std::io::Read;
        use std::time::{Duration, Instant};

        let name = format!("concurry-test-peer-{}", std::process::id());
        let listener = parent::listen(&name).unwrap();
        listener.set_nonblocking(true).unwrap();
        let exe = std::env::current_exe().unwrap();
        // `sh` forks the child (a command follows it): we are its grandparent.
        let mut shell = std::process::Command::new("sh")
            .arg("-c")
            .arg("\"$0\"; exit $?")
            .arg(&exe)
            .env(env::WORKER, "peer-test")
            .env(env::SOCKET, &name)
            .env(env::TOKEN, "12345")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let give_up = Instant::now() + Duration::from_secs(30);
        let mut stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("accept: {e}"),
            }
            assert!(Instant::now() < give_up, "the child never connected");
            crate::sync::os::sleep(Duration::from_millis(1));
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut heard = Vec::new();
        stream.read_to_end(&mut heard).unwrap();
        assert!(
            heard.is_empty(),
            "the child sent {} bytes to a stranger",
            heard.len()
        );
        let status = shell.wait().unwrap();
        assert_eq!(status.code(), Some(super::super::child::exit::SETUP));
    }
}
