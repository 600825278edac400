//! The global options as a [`Cluster`] connection, and its failures as exit codes.

use concurry::Error;
use concurry::cluster::{Cluster, ClusterOptions};

use crate::cli::Global;
use crate::exit::Failure;

/// Connects per the global options.
///
/// # Errors
///
/// [`Failure::Connection`] (exit 3) when the server cannot be reached or refuses the
/// credentials or TLS; [`Failure::Usage`] (exit 2) for an option concurry rejects (a bad
/// namespace, a zero timeout, an address that is not one).
pub(crate) fn connect(g: &Global) -> Result<Cluster, Failure> {
    let mut o = ClusterOptions::new(g.server.clone())
        .namespace(g.namespace.clone())
        .connect_timeout(g.connect_timeout)
        .connection_name("concurry-cli");
    if let Some(t) = &g.token {
        o = o.token(t.clone());
    }
    if let (Some(u), Some(p)) = (&g.user, &g.password) {
        o = o.user_password(u.clone(), p.clone());
    }
    if let Some(seed) = &g.nkey {
        o = o.nkey(seed.clone());
    }
    for ca in &g.tls_ca {
        o = o.root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&g.tls_cert, &g.tls_key) {
        o = o.client_certificate(cert.clone(), key.clone());
    }
    o.connect().map_err(|e| match e {
        Error::Config(c) if c.option() == "cluster" && !c.fix().starts_with("not a NATS") => {
            Failure::Connection(format!("could not connect to {}: {}", c.value(), c.fix()))
        }
        Error::Config(c) => {
            let flag = match c.option() {
                "cluster" => "server".to_string(),
                other => other.replace('_', "-"),
            };
            Failure::Usage(format!("--{flag} {}: {}", c.value(), c.fix()))
        }
        other => Failure::Connection(format!("could not connect to {}: {other}", g.server)),
    })
}
