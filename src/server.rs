//! Wires the gateway together: store, listeners (carriers, peers, admin), and one shutdown path.
//!
//! Shutdown: stop accepting, let in-flight calls finish (at most [`SHUTDOWN_GRACE`]), answer
//! every append already queued, flush the index, return.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::config::Config;
use crate::exchange::inbound::Inbound;
use crate::exchange::service::{PeerApi, PeerService};
use crate::exchange::{Exchange, forward};
use crate::filing::{Access, FilingService};
use crate::http2::{ListenerLimits, MessageBudget};
use crate::ingest::CarrierService;
use crate::pb::carrier_gateway_server::CarrierGatewayServer;
use crate::pb::peer_exchange_server::PeerExchangeServer;
use crate::store::{Recovery, Store, StoreError, StoreOptions};
use crate::telemetry::Metrics;
use crate::validate::Validator;
use crate::validate::ValidatorError;
use crate::{pki, tls};

/// How long in-flight calls may take to finish once shutdown starts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("development PKI: {0}")]
    Pki(#[from] pki::PkiError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr} ({listener}): {source}")]
    Bind {
        addr: SocketAddr,
        listener: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{listener} server: {source}")]
    Serve {
        listener: &'static str,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("validation: {0}")]
    Validator(#[from] ValidatorError),
    #[error("cannot start the validation pool: {0}")]
    Pool(std::io::Error),
    #[error("server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("a server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(
        "--insecure-dev trusts a header for the caller's identity, so every listener must be on \
         loopback; {listener} is configured on {addr}"
    )]
    InsecureNotLoopback {
        listener: &'static str,
        addr: SocketAddr,
    },
}

/// How to run, beyond the config file.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Serve plaintext gRPC, trusting the caller's claimed identity. Development only.
    pub insecure_dev: bool,
    /// Benchmarks only: the carrier API answers without validating or storing (the stack's
    /// own ceiling).
    #[cfg(feature = "testing")]
    pub echo: bool,
    /// Benchmarks only: append without fdatasync (what the sync costs). Loses acknowledged
    /// filings on a crash.
    #[cfg(feature = "testing")]
    pub unsafe_no_fsync: bool,
    /// Where the log lives: the operating system's files unless a test simulates a disk.
    #[cfg(feature = "testing")]
    pub disk: Option<std::sync::Arc<dyn crate::store::Disk>>,
}

impl Options {
    /// Whether appends are synced: always, but in a benchmark of what the sync costs.
    #[cfg(feature = "testing")]
    fn sync(&self) -> bool {
        if self.unsafe_no_fsync {
            tracing::warn!(
                "--unsafe-no-fsync: appends are not synced; a crash loses acknowledged filings \
                 (benchmarks only)"
            );
            return false;
        }
        true
    }

    /// The disk the log is written to: the operating system's, but in a simulation.
    fn disk(&self) -> Arc<dyn crate::store::Disk> {
        #[cfg(feature = "testing")]
        if let Some(disk) = &self.disk {
            return Arc::clone(disk);
        }
        Arc::new(crate::store::OsDisk)
    }
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    pub carrier_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub recovery: Recovery,
    store: Store,
    shutdown: CancellationToken,
    servers: Vec<(&'static str, JoinHandle<ServerResult>)>,
    admin: JoinHandle<()>,
    /// Reloads certificates, keys and CRLs when they change.
    reloader: JoinHandle<()>,
    /// Fires the filings' timers (stops at the cancellation).
    scheduler: JoinHandle<()>,
    forwarders: Vec<JoinHandle<()>>,
    exchange: Arc<Exchange>,
}

impl Gateway {
    /// Opens the store, binds every listener and starts serving.
    pub async fn start(config: &Config, options: Options) -> Result<Gateway, ServerError> {
        tls::install_crypto_provider();
        check_insecure_dev(config, &options)?;
        if let Some(dir) = &config.tls.dev_pki
            && pki::ensure_dev_pki(dir, &config.gateway_id)?
        {
            tracing::info!(dir = %dir.display(), "created a development PKI");
        }
        let carrier_tls = Arc::new(tls::Reloadable::new(config.tls.carrier_listener())?);
        let peer_tls = Arc::new(tls::Reloadable::new(config.tls.peer_listener())?);
        let (store, recovery) = open_store(config, &options).await?;
        let listeners = Listeners::bind(config).await?;
        let (carrier_addr, peer_addr, admin_addr) = listeners.addresses();

        let shutdown = CancellationToken::new();
        let metrics = Arc::new(Metrics::default());
        let exchange = Arc::new(Exchange::new(
            &config.gateway_id,
            &config.peers,
            config.routes.clone(),
            store.clone(),
        )?);
        let filings = filing_service(config, &store, &metrics, &exchange, &shutdown)?;
        let inbound = Inbound::new(
            Arc::clone(&exchange),
            Arc::clone(&metrics),
            shutdown.clone(),
        );
        let serving = Serving {
            config,
            metrics: &metrics,
            shutdown: &shutdown,
        };
        let servers = serving
            .start_both(
                (listeners.carrier, carrier_tls.clone(), filings),
                (listeners.peer, peer_tls.clone(), inbound),
                &options,
            )
            .await?;
        let admin = tokio::spawn(crate::admin::serve(
            listeners.admin,
            Arc::clone(&exchange),
            metrics,
            crate::admin::HostFiles {
                data_dir: config.data_dir.clone(),
                certificates: vec![
                    ("server", config.tls.server_cert.clone()),
                    ("carrier_ca", config.tls.carrier_ca.clone()),
                    ("peer_ca", config.tls.peer_ca.clone()),
                ],
            },
            shutdown.clone(),
        ));
        let peer_client_tls = peer_client_tls(config)?;
        let reloader = tokio::spawn(tls::reload_on_change(
            vec![carrier_tls, peer_tls],
            shutdown.clone(),
        ));
        let forwarders = forward::spawn(&exchange, &peer_client_tls, &shutdown);
        let scheduler = tokio::spawn(crate::store::scheduler::run(
            store.clone(),
            shutdown.clone(),
        ));
        tracing::info!(
            carrier = %carrier_addr, peer = %peer_addr, admin = %admin_addr,
            tls = !options.insecure_dev, "gateway listening"
        );
        Ok(Gateway {
            carrier_addr,
            peer_addr,
            admin_addr,
            recovery,
            store,
            shutdown,
            servers,
            admin,
            reloader,
            scheduler,
            forwarders,
            exchange,
        })
    }

    /// The gateway's store (for tests and tools in the same process).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The peers' progress (for tests and tools in the same process).
    pub fn exchange(&self) -> &Exchange {
        &self.exchange
    }

    /// Stops accepting, drains in-flight calls and queued appends, and returns.
    pub async fn stop(self) -> Result<(), ServerError> {
        self.shutdown.cancel();
        let mut first_error = None;
        for (listener, server) in self.servers {
            let abort = server.abort_handle();
            match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(source))) => {
                    first_error.get_or_insert(ServerError::Serve { listener, source });
                }
                Ok(Err(join)) => {
                    first_error.get_or_insert(ServerError::Task(join));
                }
                Err(_) => {
                    tracing::warn!(
                        listener,
                        "calls still running after the grace period; cut off"
                    );
                    abort.abort();
                }
            }
        }
        self.admin.abort();
        self.reloader.abort();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.scheduler).await;
        for forwarder in self.forwarders {
            // Forwarders stop at the cancellation (saving their cursors) within moments.
            if tokio::time::timeout(SHUTDOWN_GRACE, forwarder)
                .await
                .is_err()
            {
                tracing::warn!("a forwarder did not stop within the grace period");
            }
        }
        self.store.close().await;
        tracing::info!("gateway stopped");
        first_error.map_or(Ok(()), Err)
    }
}

/// The carrier use-cases over the store, with the config's rules, access and limits.
fn filing_service(
    config: &Config,
    store: &Store,
    metrics: &Arc<Metrics>,
    exchange: &Arc<Exchange>,
    shutdown: &CancellationToken,
) -> Result<FilingService, ServerError> {
    Ok(FilingService::new(
        store.clone(),
        Arc::new(Validator::new(config.validation.clone())?),
        Arc::new(Access {
            representatives: config.representatives.clone(),
        }),
        Arc::clone(metrics),
        Arc::clone(exchange),
        shutdown.clone(),
    )
    .map_err(ServerError::Pool)?
    .with_limits(config.carrier_api.per_carrier)
    .with_attachment_limit(config.lifecycle.max_attachment_bytes))
}

/// `--insecure-dev` trusts a header for the caller's identity: only on loopback.
fn check_insecure_dev(config: &Config, options: &Options) -> Result<(), ServerError> {
    if !options.insecure_dev {
        return Ok(());
    }
    for (listener, addr) in [
        ("carrier_api.listen", config.carrier_api.listen),
        ("peer_api.listen", config.peer_listen),
        ("admin.listen", config.admin_listen),
    ] {
        if !addr.ip().is_loopback() {
            return Err(ServerError::InsecureNotLoopback { listener, addr });
        }
    }
    tracing::warn!(
        "--insecure-dev: the carrier API serves PLAINTEXT and trusts the caller's claimed \
         identity; never use this outside development"
    );
    Ok(())
}

/// Opens the store (recovering the log) off the async workers, and says what recovery did.
async fn open_store(config: &Config, options: &Options) -> Result<(Store, Recovery), ServerError> {
    let data_dir = config.data_dir.clone();
    let store_options = StoreOptions {
        country: config.country.clone(),
        segment_bytes: config.store.segment_bytes,
        max_batch: config.store.max_batch,
        duplicate_document_window: config.duplicate_document_window,
        immutable: config.lifecycle.immutable,
        timers: config.lifecycle.timers,
        #[cfg(feature = "testing")]
        sync: options.sync(),
        disk: options.disk(),
        jetstream: config.store.jetstream.clone(),
    };
    let (store, recovery) =
        tokio::task::spawn_blocking(move || Store::open(&data_dir, store_options)).await??;
    if let Some(cut) = &recovery.cut {
        tracing::warn!(
            segment = %cut.segment.display(), offset = cut.offset, bytes = cut.bytes,
            reason = %cut.reason, kept_in = %cut.kept_in.display(),
            "cut a torn tail off the log (unacknowledged writes of the last crash)"
        );
    }
    if let Some((from, to)) = recovery.acknowledged_lost {
        tracing::error!(
            from,
            to,
            "acknowledged records are missing from the log; the index was rebuilt without them"
        );
    }
    tracing::info!(records = recovery.last_seq, data = %config.data_dir.display(), "log opened");
    Ok((store, recovery))
}

/// The three listening sockets.
struct Listeners {
    carrier: TcpListener,
    peer: TcpListener,
    admin: TcpListener,
}

impl Listeners {
    async fn bind(config: &Config) -> Result<Listeners, ServerError> {
        let bind = |addr: SocketAddr, listener: &'static str| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind {
                    addr,
                    listener,
                    source,
                })
        };
        Ok(Listeners {
            carrier: bind(config.carrier_api.listen, "carrier API").await?,
            peer: bind(config.peer_listen, "peer API").await?,
            admin: bind(config.admin_listen, "admin").await?,
        })
    }

    /// Where each listens (the port the system chose, for port 0).
    fn addresses(&self) -> (SocketAddr, SocketAddr, SocketAddr) {
        let local = |l: &TcpListener| l.local_addr().expect("a bound socket has an address");
        (local(&self.carrier), local(&self.peer), local(&self.admin))
    }
}

/// What both gRPC listeners are served with.
struct Serving<'a> {
    config: &'a Config,
    metrics: &'a Arc<Metrics>,
    shutdown: &'a CancellationToken,
}

/// How a listener's server ended.
type ServerResult = Result<(), tonic::transport::Error>;
/// A listener's server, built and ready to run.
type ServerRun = std::pin::Pin<Box<dyn Future<Output = ServerResult> + Send>>;

impl Serving<'_> {
    /// Builds both gRPC servers, then runs them: a failure to build either leaves nothing
    /// serving.
    async fn start_both(
        &self,
        (carrier_listener, carrier_tls, filings): (
            TcpListener,
            Arc<tls::Reloadable>,
            FilingService,
        ),
        (peer_listener, peer_tls, inbound): (TcpListener, Arc<tls::Reloadable>, Inbound),
        options: &Options,
    ) -> Result<Vec<(&'static str, JoinHandle<ServerResult>)>, ServerError> {
        let built = async {
            let carrier = self
                .carrier_api(carrier_listener, carrier_tls, filings, options)
                .await?;
            let peer = self.peer_api(peer_listener, peer_tls, inbound).await?;
            Ok::<_, ServerError>((carrier, peer))
        };
        match built.await {
            Ok((carrier, peer)) => Ok(vec![
                ("carrier API", tokio::spawn(carrier)),
                ("peer API", tokio::spawn(peer)),
            ]),
            Err(e) => {
                self.shutdown.cancel();
                Err(e)
            }
        }
    }

    /// The carrier listener: mutual TLS against the carrier CA (plaintext with
    /// `--insecure-dev`), the carrier API, health and reflection.
    async fn carrier_api(
        &self,
        listener: TcpListener,
        tls: Arc<tls::Reloadable>,
        filings: FilingService,
        options: &Options,
    ) -> Result<ServerRun, ServerError> {
        let api = &self.config.carrier_api;
        let incoming = tls::accept(
            listener,
            (!options.insecure_dev).then_some(tls),
            "carrier",
            Arc::clone(self.metrics),
            self.shutdown.clone(),
        );
        let service = CarrierGatewayServer::new(CarrierService::new(filings))
            .max_decoding_message_size(api.max_message_bytes);
        let router = server_builder(&api.limits)
            .layer(whole_messages_only(api.limits, api.max_message_bytes))
            .layer(tower::util::MapResponseLayer::new(
                transport_refusals_in_plain_words as fn(_) -> _,
            ))
            .add_service(health_of::<CarrierGatewayServer<CarrierService>>().await)
            .add_service(reflection_v1(
                "aci/v1/carrier.proto",
                "aci.v1.CarrierGateway",
            )?)
            .add_service(reflection_v1alpha(
                "aci/v1/carrier.proto",
                "aci.v1.CarrierGateway",
            )?);
        #[cfg(feature = "testing")]
        let router = if options.echo {
            tracing::warn!(
                "--echo: the carrier API answers without validating or storing (benchmarks only)"
            );
            router.add_service(
                CarrierGatewayServer::new(crate::ingest::echo::EchoCarrier)
                    .max_decoding_message_size(api.max_message_bytes),
            )
        } else {
            router.add_service(service)
        };
        #[cfg(not(feature = "testing"))]
        let router = router.add_service(service);
        let server =
            router.serve_with_incoming_shutdown(incoming, self.shutdown.clone().cancelled_owned());
        Ok(Box::pin(server))
    }

    /// The peer listener: mutual TLS against the peer CA, the peer API, health and reflection.
    async fn peer_api(
        &self,
        listener: TcpListener,
        tls: Arc<tls::Reloadable>,
        inbound: Inbound,
    ) -> Result<ServerRun, ServerError> {
        let max_message =
            crate::exchange::peer_max_message(self.config.carrier_api.max_message_bytes);
        let incoming = tls::accept(
            listener,
            Some(tls),
            "peer",
            Arc::clone(self.metrics),
            self.shutdown.clone(),
        );
        let limits = self.config.peer_limits;
        let server = server_builder(&limits)
            .layer(whole_messages_only(limits, max_message))
            .add_service(health_of::<PeerExchangeServer<PeerService>>().await)
            .add_service(reflection_v1(
                "aci/v1/exchange.proto",
                "aci.v1.PeerExchange",
            )?)
            .add_service(reflection_v1alpha(
                "aci/v1/exchange.proto",
                "aci.v1.PeerExchange",
            )?)
            .add_service(PeerApi::new(PeerService::new(inbound), max_message))
            .serve_with_incoming_shutdown(incoming, self.shutdown.clone().cancelled_owned());
        Ok(Box::pin(server))
    }
}

/// The health service of a listener: it reports the listener's own service (and the server
/// as a whole, ""), nothing else.
async fn health_of<S: tonic::server::NamedService>()
-> tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health> {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_serving::<S>().await;
    service
}

/// Server reflection, so stock tools (grpcurl, grpcio-reflection) can list and call: a
/// listener shows its own service, its health and the files they need, nothing else. Both
/// versions of the protocol: many tools still speak only v1alpha.
fn reflection_builder<'b>(file: &str, service: &'b str) -> tonic_reflection::server::Builder<'b> {
    tonic_reflection::server::Builder::configure()
        .register_file_descriptor_set(crate::pb::descriptor_set_of(file))
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .with_service_name(service)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .with_service_name("grpc.reflection.v1alpha.ServerReflection")
}

fn reflection_v1(
    file: &str,
    service: &str,
) -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    ServerError,
> {
    Ok(reflection_builder(file, service).build_v1()?)
}

fn reflection_v1alpha(
    file: &str,
    service: &str,
) -> Result<
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
    ServerError,
> {
    Ok(reflection_builder(file, service).build_v1alpha()?)
}

/// A gateway is a client of its peers with its own certificate, trusting the peer CA. Read
/// now, so that a bad file stops the start, not the first forward.
fn peer_client_tls(config: &Config) -> Result<Arc<tls::ClientFiles>, ServerError> {
    let files = Arc::new(tls::ClientFiles {
        cert: config.tls.server_cert.clone(),
        key: config.tls.server_key.clone(),
        server_ca: config.tls.peer_ca.clone(),
        crls: config.tls.peer_crls.clone(),
    });
    files.config()?;
    Ok(files)
}

/// Runs a gateway until `shutdown` completes.
pub async fn run(
    config: &Config,
    options: Options,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(&Gateway),
) -> Result<(), ServerError> {
    let gateway = Gateway::start(config, options).await?;
    on_ready(&gateway);
    shutdown.await;
    tracing::info!("shutting down");
    gateway.stop().await
}

/// The HTTP/2 server of a listener, under its limits (see [`ListenerLimits`]). It also pings a
/// connection quiet for a minute and drops it if the ping is not answered (a vanished or
/// frozen client holds nothing for long).
fn server_builder(limits: &ListenerLimits) -> Server {
    Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(60)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_max_header_list_size(limits.max_header_list_bytes)
        .timeout(limits.request_timeout)
        .max_connection_age(limits.max_connection_age)
        .max_connection_age_grace(limits.max_connection_age_grace)
        .http2_max_local_error_reset_streams(Some(limits.max_local_resets))
}

/// Reads every request body of a listener through its connection's budget: the decoder sees
/// only whole messages, and a connection holds at most `limits.max_pending_message_bytes` of
/// incomplete ones.
fn whole_messages_only(
    limits: ListenerLimits,
    max_message: usize,
) -> tower::util::MapRequestLayer<
    impl Fn(http::Request<tonic::body::Body>) -> http::Request<tonic::body::Body> + Clone,
> {
    let budget = MessageBudget {
        limit: limits.max_pending_message_bytes,
        max_message,
    };
    tower::util::MapRequestLayer::new(move |request: http::Request<tonic::body::Body>| {
        let connection = request
            .extensions()
            .get::<tls::PeerInfo>()
            .map(|info| Arc::clone(&info.budget));
        budget.wrap(request, connection)
    })
}

/// tonic refuses an over-size message with `OUT_OF_RANGE`; the gRPC specification (and every
/// other implementation) says `RESOURCE_EXHAUSTED`. Before the handler runs, the refusal is a
/// trailers-only response, so its status is in the headers, where this rewrites it.
fn transport_refusals_in_plain_words(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let Some(status) = tonic::Status::from_header_map(response.headers()) else {
        return response;
    };
    // tonic reports both as its own failure (OUT_OF_RANGE, INTERNAL); to the caller they are
    // what they are: too large, or not a message at all (malformed, nested past prost's limit).
    let refusal = match status.code() {
        tonic::Code::OutOfRange if status.message().contains("message length too large") => {
            tonic::Status::resource_exhausted(
                "message larger than carrier_api.max_message_bytes; split the filing",
            )
        }
        tonic::Code::Internal if status.message().starts_with("failed to decode Protobuf") => {
            tonic::Status::invalid_argument(format!(
                "the request is not a valid protobuf message: {}",
                status.message()
            ))
        }
        _ => return response,
    };
    if let Err(e) = refusal.add_header(response.headers_mut()) {
        tracing::warn!(error = %e, "could not rewrite the transport's status");
    }
    response
}
