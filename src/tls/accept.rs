//! The accepting side of a listener: each TLS handshake in its own task under a deadline, a
//! deadline for the first bytes after it, and the connection's identity read once.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::{
    FIRST_BYTES_TIMEOUT, HANDSHAKE_TIMEOUT, PeerInfo, ProfileError, Reloadable, identity_of,
};

/// A byte stream the gRPC server runs over: TLS or (development only) plain TCP.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// An accepted connection with what is known about its peer.
pub struct Connection {
    io: Box<dyn Io>,
    info: PeerInfo,
    /// Until the first bytes arrive: when the silent connection is dropped.
    silence: Option<Silence>,
}

/// The deadline of a connection that has not said anything yet.
struct Silence {
    deadline: Pin<Box<tokio::time::Sleep>>,
    listener: &'static str,
    metrics: Arc<crate::telemetry::Metrics>,
}

impl Connection {
    fn new(
        io: Box<dyn Io>,
        info: PeerInfo,
        listener: &'static str,
        metrics: &Arc<crate::telemetry::Metrics>,
    ) -> Connection {
        Connection {
            io,
            info,
            silence: Some(Silence {
                deadline: Box::pin(tokio::time::sleep(FIRST_BYTES_TIMEOUT)),
                listener,
                metrics: Arc::clone(metrics),
            }),
        }
    }
}

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let filled = buf.filled().len();
        let this = &mut *self;
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Some(silence) = &mut this.silence {
            if read.is_ready() {
                if buf.filled().len() > filled {
                    this.silence = None;
                }
            } else if silence.deadline.as_mut().poll(cx).is_ready() {
                silence.metrics.handshake_failed(silence.listener, "silent");
                tracing::info!(listener = silence.listener, remote = ?this.info.remote, "connection closed: nothing sent after the handshake");
                return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
            }
        }
        read
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Accepts connections on `listener` until `shutdown`, completing each TLS handshake in its own
/// task (so a slow client holds up nobody), and yields the connections that finished it.
/// With `tls` absent, connections are plain TCP (development only).
pub fn accept(
    listener: TcpListener,
    tls: Option<Arc<Reloadable>>,
    listener_name: &'static str,
    metrics: Arc<crate::telemetry::Metrics>,
    shutdown: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<Connection>> {
    let (sender, receiver) = mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            let (tcp, remote) = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(listener = listener_name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let sender = sender.clone();
            // The configuration in force now: a reload applies from the next handshake.
            let acceptor = tls.as_ref().map(|tls| TlsAcceptor::from(tls.current()));
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                if let Some(connection) =
                    handshake(tcp, remote, acceptor, listener_name, &metrics).await
                    && sender.send(Ok(connection)).await.is_err()
                {
                    tracing::debug!(%remote, "server stopped before the connection was served");
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// Why a handshake failed, in a few stable words (for metrics).
fn failure_reason(error: &std::io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
    {
        Some(Error::NoCertificatesPresented) => "no_certificate",
        Some(Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => "expired",
        Some(Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        )) => "not_yet_valid",
        Some(Error::InvalidCertificate(CertificateError::UnknownIssuer)) => "unknown_issuer",
        Some(Error::InvalidCertificate(CertificateError::Revoked)) => "revoked",
        Some(Error::InvalidCertificate(CertificateError::Other(other))) => other
            .0
            .downcast_ref::<ProfileError>()
            .map_or("bad_certificate", ProfileError::reason),
        Some(Error::InvalidCertificate(_)) => "bad_certificate",
        Some(Error::PeerIncompatible(_) | Error::NoApplicationProtocol) => "incompatible",
        Some(_) => "protocol",
        None => "io",
    }
}

async fn handshake(
    tcp: TcpStream,
    remote: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    listener_name: &'static str,
    metrics: &Arc<crate::telemetry::Metrics>,
) -> Option<Connection> {
    let Some(acceptor) = acceptor else {
        let info = PeerInfo {
            remote: Some(remote),
            identity: None,
            insecure: true,
            budget: Arc::default(),
        };
        return Some(Connection::new(Box::new(tcp), info, listener_name, metrics));
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            let identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(identity_of);
            let info = PeerInfo {
                remote: Some(remote),
                identity,
                insecure: false,
                budget: Arc::default(),
            };
            Some(Connection::new(
                Box::new(stream),
                info,
                listener_name,
                metrics,
            ))
        }
        Ok(Err(e)) => {
            let reason = failure_reason(&e);
            metrics.handshake_failed(listener_name, reason);
            tracing::info!(listener = listener_name, %remote, reason, error = %e, "TLS handshake refused");
            None
        }
        Err(_) => {
            metrics.handshake_failed(listener_name, "timeout");
            tracing::info!(listener = listener_name, %remote, "TLS handshake timed out");
            None
        }
    }
}
