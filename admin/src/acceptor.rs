//! The admin's accept loop: one thread that accepts, admits each connection
//! into the [`Slots`] table (the cap), and starts one thread per admitted
//! connection.
//!
//! Invariants: the loop never ends before shutdown, whatever `accept`
//! returns. On EMFILE/ENFILE (or any other accept error) it backs off
//! [`BACKOFF`] and retries, logging one warning when an episode starts and
//! one line when it ends, never one per retry; the pending connections wait
//! in the kernel backlog meanwhile. A connection is a thread and one
//! descriptor only while it holds a slot, so the admin never holds more than
//! `max_connections` client descriptors: it cannot starve the data plane of
//! descriptors beyond that bound.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::conn::Conn;
use crate::limits::AdminLimits;
use crate::server::{self, Shared};
use crate::slots::{Admission, Slots};

/// Pause after a failed accept (EMFILE and friends clear only when some
/// descriptor is closed, so retrying at once would spin).
pub(crate) const BACKOFF: Duration = Duration::from_millis(100);

/// Starts the accept thread on `listener`.
pub(crate) fn start(
    listener: TcpListener,
    shared: Arc<Shared>,
    slots: Arc<Slots>,
    limits: AdminLimits,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("admin-accept".into())
        .spawn(move || accept_loop(&listener, &shared, &slots, limits))
}

fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    slots: &Arc<Slots>,
    limits: AdminLimits,
) {
    let mut failing = false;
    loop {
        // Checked before the accept too: after a back-off nobody may be
        // left to wake a blocking accept.
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let accepted = listener.accept();
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                if !failing {
                    log::warn!(
                        "admin: accept failed: {e}; retrying every {} ms",
                        BACKOFF.as_millis()
                    );
                    failing = true;
                }
                thread::sleep(BACKOFF);
                continue;
            }
        };
        if failing {
            log::warn!("admin: accepting again");
            failing = false;
        }
        let stream = Arc::new(stream);
        let slot = match slots.admit(Arc::clone(&stream)) {
            Admission::In(slot) => slot,
            // Dropping the only handle closes it at once.
            Admission::Full => continue,
        };
        let conn = Conn::new(stream, slot, limits);
        let shared = Arc::clone(shared);
        // On a spawn failure the closure (and with it the connection and its
        // slot) is dropped: the client sees a close.
        let spawned = thread::Builder::new()
            .name("admin-conn".into())
            .spawn(move || server::serve(&shared, conn));
        if let Err(e) = spawned {
            log::warn!("admin: could not start a connection thread: {e}");
        }
    }
}

/// Unblocks a blocking `accept` on `local` by connecting to it (to loopback
/// when it listens on a wildcard address).
pub(crate) fn wake(local: SocketAddr) {
    let mut to = local;
    if to.ip().is_unspecified() {
        to.set_ip(match local {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    if let Err(e) = TcpStream::connect_timeout(&to, Duration::from_secs(1)) {
        // Only at EMFILE: the loop is then in its back-off and sees the flag.
        log::debug!("admin: could not wake the accept loop: {e}");
    }
}
