//! A fault-injecting TCP proxy for one directed Raft link (node i's
//! connections to node j): forwards bytes while the link is up; cutting it
//! drops every open connection and black-holes new ones (accepted, never
//! answered) until it heals, as a lost route would.

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One directed link through the proxy.
pub struct Link {
    /// Where the source node connects (`127.0.0.1:PORT`).
    pub addr: String,
    cut: watch::Sender<bool>,
}

impl Link {
    /// Listens on a free loopback port (none of `avoid`: ports the nodes
    /// were given but may not have bound yet) and forwards to `target`.
    pub async fn start(target: String, avoid: &[u16]) -> Link {
        let mut listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        while avoid.contains(&listener.local_addr().expect("proxy addr").port()) {
            listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        }
        let addr = listener.local_addr().expect("proxy addr").to_string();
        let (cut, watch_cut) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let cut = watch_cut.clone();
                let target = target.clone();
                tokio::spawn(async move { serve(inbound, target, cut).await });
            }
        });
        Link { addr, cut }
    }

    /// Cuts (`true`) or heals (`false`) the link.
    pub fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }
}

async fn serve(mut inbound: TcpStream, target: String, mut cut: watch::Receiver<bool>) {
    if *cut.borrow() {
        // Black hole: hold the connection silently until the link heals.
        let _ = cut.wait_for(|c| !*c).await;
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(&target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = cut.wait_for(|c| *c) => {}
    }
}
