//! A TCP proxy that injects network faults between two gateways, on command: delay every chunk,
//! stall (hold every byte), drop (read and discard), reset the connections (RST), or cut them
//! (FIN). tc netem and toxiproxy are not on these machines; this is our own, on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to the bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Bytes pass as they come.
    Pass,
    /// Every chunk waits this long before it is passed on.
    Delay(Duration),
    /// Nothing moves (connections stay open) until the flow changes.
    Stall,
    /// Bytes are read and thrown away: the peer hears nothing, and the sender does not know.
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Faults {
    flow: Flow,
    /// Bumped to end every connection open now; `reset` says with a RST rather than a FIN.
    epoch: u64,
    reset: bool,
}

/// A running proxy from `addr` to an upstream address. Dropping it stops it.
pub struct FaultProxy {
    pub addr: SocketAddr,
    faults: watch::Sender<Faults>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on `listen` (port 0: any) and carries each connection to `upstream`.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind(listen).await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let (faults, watching) = watch::channel(Faults {
            flow: Flow::Pass,
            epoch: 0,
            reset: false,
        });
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let watching = watching.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    carry(client, server, watching).await;
                });
            }
        });
        FaultProxy {
            addr,
            faults,
            accept,
        }
    }

    pub fn set_flow(&self, flow: Flow) {
        self.faults.send_modify(|f| f.flow = flow);
    }

    /// Ends every open connection with a RST (new ones are carried as before).
    pub fn reset(&self) {
        self.faults.send_modify(|f| {
            f.epoch += 1;
            f.reset = true;
        });
    }

    /// Ends every open connection with a FIN both ways.
    pub fn cut(&self) {
        self.faults.send_modify(|f| {
            f.epoch += 1;
            f.reset = false;
        });
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn carry(client: TcpStream, server: TcpStream, faults: watch::Receiver<Faults>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let epoch = faults.borrow().epoch;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, faults.clone(), epoch);
    let down = pump(server_read, client_write, faults, epoch);
    let _ = tokio::join!(up, down);
}

/// Moves bytes one way until either side closes or the connection's epoch ends.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut faults: watch::Receiver<Faults>,
    epoch: u64,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = ended(&mut faults, epoch) => break,
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Wait out a stall (the bytes read are held, not lost), unless the connection ends.
        loop {
            let flow = faults.borrow().flow;
            match flow {
                Flow::Stall => {
                    if faults.changed().await.is_err() || faults.borrow().epoch != epoch {
                        finish(&to, &faults);
                        return;
                    }
                }
                Flow::Delay(delay) => {
                    tokio::time::sleep(delay).await;
                    break;
                }
                Flow::Pass | Flow::Drop => break,
            }
        }
        if faults.borrow().flow == Flow::Drop {
            continue;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    finish(&to, &faults);
    let _ = to.shutdown().await;
}

/// On a reset, the socket is closed with a RST rather than a FIN. (A zero linger never blocks
/// the thread on drop, which is why tokio deprecates the setter in general.)
#[allow(deprecated)]
fn finish(to: &OwnedWriteHalf, faults: &watch::Receiver<Faults>) {
    if faults.borrow().reset {
        let _ = to.as_ref().set_linger(Some(Duration::ZERO));
    }
}

/// Resolves when the connection's epoch is over.
async fn ended(faults: &mut watch::Receiver<Faults>, epoch: u64) {
    loop {
        if faults.borrow_and_update().epoch != epoch {
            return;
        }
        if faults.changed().await.is_err() {
            return;
        }
    }
}
