//! Builds a node: storage, keys, actors' hub, the HTTP server bound to its listener.
//! `Application::build` binds first, so tests can ask for port 0 and read the real port.

use std::sync::Arc;
use std::time::Duration;

use std::any::Any;

use actix_http::{HttpService, KeepAlive, TlsAcceptorConfig};
use actix_service::{IntoServiceFactory, map_config};
use actix_web::dev::{AppConfig, Extensions, Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use corral_actors::claims::Claims;
use corral_actors::{
    Activities, Admission, AdmissionConfig, Arbiters, CatalogError, Connections, Hub, Overload,
    Rooms, SessionConfig, UserRates, UserSessions,
};
use secrecy::ExposeSecret;
use tokio::sync::mpsc;

use crate::auth::password::Hasher;
use crate::auth::throttle::LoginLimits;
use crate::auth::{JwtKeys, secret};
use crate::config::Settings;
use crate::http::Surface;
use crate::http::client_ip::TrustedProxies;
use crate::http::conn_limit::PeerConnections;
use crate::state::{AppState, Edge};
use crate::store::redis::{RedisError, RedisStore};
use crate::store::sql::chat::SqlMessageStore;
use crate::store::sql::claims::SqlCatalog;
use crate::store::sql::{ActivityRepo, SocialRepo, SqlRules};
use crate::store::{self, Db, StoreError};
use crate::telemetry;

/// Events from other nodes waiting to be applied before new ones are dropped.
const CLUSTER_QUEUE: usize = 65536;
/// Open connections the operators' listener takes at once.
const ADMIN_CONNECTIONS: usize = 256;
/// How long a TLS handshake may take (`HttpServer`'s default).
const TLS_HANDSHAKE: Duration = Duration::from_secs(3);
/// How long a closing HTTP connection may take to go (`HttpServer`'s default).
const CLIENT_DISCONNECT: Duration = Duration::from_secs(1);
/// Users whose request budgets a node remembers at once.
const USER_RATE_KEYS: usize = 1 << 20;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// SQL trouble.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Redis trouble.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// Arming the activities' timers failed.
    #[error(transparent)]
    Activities(#[from] CatalogError),
    /// Binding, files.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A listener's address could not be bound (taken, not local, not an address).
    #[error("cannot listen on {addr}: free it or choose another address with {setting}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Where that address is configured.
        setting: &'static str,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The argon2 settings are not usable.
    #[error(transparent)]
    Hash(#[from] crate::auth::password::HashError),
    /// The connection limits do not fit the open-files limit.
    #[error(transparent)]
    FdLimit(#[from] crate::fd_limit::FdLimitError),
    /// A `server.trusted_proxies` entry does not parse.
    #[error("server.trusted_proxies: {0}")]
    Proxies(#[from] crate::http::client_ip::BadNet),
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Re-reads the accounts' standing every `every` (0: never), closing sessions that lost
/// rights: a backstop for role changes made in the database and for bus events lost between
/// nodes.
fn spawn_standing_refresh(state: web::Data<AppState>, every: Duration) {
    if every.is_zero() {
        return;
    }
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            match state.repos.accounts.standings().await {
                Ok(rows) => {
                    for user in state.hub.revocations.reload(rows) {
                        state.hub.close_sessions_of(user);
                    }
                }
                Err(err) => tracing::warn!(%err, "refreshing account standings failed"),
            }
        }
    });
}

/// Names the address and the setting that chose it when binding fails: the OS error alone
/// ("Address already in use") says neither.
fn bind_failed(addr: &str, setting: &'static str) -> impl FnOnce(std::io::Error) -> StartupError {
    let addr = addr.to_string();
    move |source| StartupError::Bind {
        addr,
        setting,
        source,
    }
}

/// Pending connections the kernel queues per listener: a flash crowd connects at once.
const BACKLOG: i32 = 8192;

/// Binds every address `addr` resolves to (as actix-web's own `bind` would), before anything
/// else starts: a taken port then fails the start with nothing opened yet to tear down.
fn listen_on(addr: &str) -> std::io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut listeners = Vec::new();
    let mut last_err = None;
    for sa in std::net::ToSocketAddrs::to_socket_addrs(addr)? {
        let bound = (|| {
            let socket = Socket::new(Domain::for_address(sa), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            socket.bind(&sa.into())?;
            socket.listen(BACKLOG)?;
            Ok::<_, std::io::Error>(std::net::TcpListener::from(socket))
        })();
        match bound {
            Ok(listener) => listeners.push(listener),
            Err(err) => last_err = Some(err),
        }
    }
    match (listeners.is_empty(), last_err) {
        (true, Some(err)) => Err(err),
        (true, None) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        )),
        _ => Ok(listeners),
    }
}

/// A built node, bound and ready to run.
pub struct Application {
    port: u16,
    server: Server,
    /// The operators' listener (`server.admin_listen`): its port and server.
    admin: Option<(u16, Server)>,
    state: web::Data<AppState>,
}

/// One listener's app: the edge's middleware around the routes `surface` serves (a macro, as
/// the app's type cannot be named; both listeners build theirs with it).
macro_rules! corral_app {
    ($state:expr, $deadline:expr, $surface:expr) => {{
        let deadline = $deadline;
        let surface = $surface;
        App::new()
            .wrap(from_fn(crate::http::error_shape::error_shape))
            .wrap(from_fn(move |req, next| {
                crate::http::deadline::within(deadline, req, next)
            }))
            .wrap(from_fn(crate::http::origin::cors))
            .wrap(from_fn(crate::http::conn_limit::refuse_over_limit))
            .wrap(from_fn(crate::http::request_id::request_id))
            .wrap(from_fn(crate::http::access::observe))
            .app_data($state.clone())
            .configure(move |cfg| crate::http::routes(cfg, surface))
    }};
}

/// The public listener's HTTP service: HTTP/1 with `HttpServer`'s settings, the app, and the
/// WebSocket upgrade hook running a second copy of the app for upgrade requests (a macro for
/// the same reason as [`corral_app!`]; it is finished with `.tcp()` or TLS).
macro_rules! public_service {
    ($state:expr, $deadline:expr, $surface:expr, $peers:expr, $config:expr, $addr:expr) => {{
        let peers = $peers.clone();
        let config: AppConfig = $config;
        let upgrade_config = config.clone();
        HttpService::build()
            .keep_alive(KeepAlive::default())
            .client_request_timeout($deadline)
            .client_disconnect_timeout(CLIENT_DISCONNECT)
            // Realtime frames go out as they are written: with Nagle's algorithm a reply
            // written just after a push waits for the client's delayed ACK (~40 ms).
            .tcp_nodelay(true)
            .local_addr($addr)
            .on_connect_ext(move |io: &_, data: &mut Extensions| {
                peers.on_connect(io as &dyn Any, data)
            })
            .upgrade(crate::ws::upgrade::factory(
                corral_app!($state, $deadline, $surface).into_factory(),
                upgrade_config,
            ))
            .finish(map_config(
                corral_app!($state, $deadline, $surface).into_factory(),
                move |_| config.clone(),
            ))
    }};
}

impl Application {
    /// Connects storage, runs migrations, binds the listener.
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        // The recorder first: what is counted before it exists is lost.
        let metrics = telemetry::metrics_handle();
        let budget = crate::fd_limit::plan(&settings)?;
        let public_listeners = listen_on(&settings.server.listen).map_err(bind_failed(
            &settings.server.listen,
            "`server.listen` (--listen, CORRAL_SERVER__LISTEN)",
        ))?;
        let admin_listeners = match settings.server.admin_listen.as_str() {
            "" => None,
            addr => Some(listen_on(addr).map_err(bind_failed(
                addr,
                "`server.admin_listen` (CORRAL_SERVER__ADMIN_LISTEN)",
            ))?),
        };
        let db = Db::connect(&settings.database, &settings.server.data_dir).await?;
        db.migrate().await?;
        let redis = if settings.redis.url.expose_secret().is_empty() {
            None
        } else {
            Some(RedisStore::connect(&settings.redis).await?)
        };
        let key = secret::load_or_generate(&settings.auth.jwt_secret, &settings.server.data_dir)?;
        let keys = Arc::new(JwtKeys::new(
            &key,
            &settings.auth.issuer,
            settings.auth.token_ttl_secs,
        ));
        let workers = match settings.server.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let (cluster_tx, cluster_rx) = mpsc::channel(CLUSTER_QUEUE);
        let (broker, bus) =
            store::broker_and_bus(&settings.redis, redis.as_ref(), cluster_tx).await?;
        let link = broker.link();
        let users = Arc::new(UserSessions::new(bus));
        let (ledger, reconciler) = store::claim_ledger(&db, redis.as_ref()).await?;
        // One catalogue for the claim desk and the activities; the desk is built first and
        // the activities over it (they subscribe to its stock streams).
        let catalog = Arc::new(SqlCatalog::new(Arc::new(ActivityRepo::new(&db))));
        let claims = Claims::new(
            ledger,
            catalog.clone(),
            users.clone(),
            Arc::new(SocialRepo::new(&db)),
            Arc::new(SqlRules::start(&db)),
            settings.promotions.claim_timeout(),
        );
        if let Some(mut link) = link {
            // Stock moves of other nodes published while the link was down never arrive.
            let desk = claims.clone();
            tokio::spawn(async move {
                while link.changed().await.is_ok() {
                    if *link.borrow_and_update() {
                        desk.refresh();
                    }
                }
            });
        }
        let reconcile_every = Duration::from_millis(settings.redis.claims_reconcile_ms);
        if let Some(reconciler) = reconciler
            && !reconcile_every.is_zero()
        {
            // Slots it gives back reach every node's watchers.
            let desk = claims.clone();
            reconciler.spawn(reconcile_every, move |activity| desk.returned(activity));
        }
        let ws = &settings.ws;
        let arbiters = Arbiters::start(workers);
        let activities = Activities::new(
            arbiters.clone(),
            catalog,
            claims.clone(),
            settings.promotions.stock_frames_per_sec,
        );
        let overload = Arc::new(Overload::new(settings.overload.to_pacing()));
        let hub = Arc::new(Hub {
            session: SessionConfig {
                auth_timeout: ws.auth_timeout(),
                rate_per_sec: ws.rate_per_sec,
                rate_burst: ws.rate_burst,
                outbound_queue: ws.outbound_queue,
            },
            verifier: keys.clone(),
            revocations: keys.revocations(),
            user_rates: match store::shared_rates(redis.as_ref(), ws) {
                Some(shared) => UserRates::shared(
                    ws.user_rate_per_sec,
                    ws.user_rate_burst,
                    USER_RATE_KEYS,
                    shared,
                    Duration::from_millis(ws.user_rate_settle_ms),
                ),
                None => Arc::new(UserRates::local(
                    ws.user_rate_per_sec,
                    ws.user_rate_burst,
                    USER_RATE_KEYS,
                )),
            },
            admission: Admission::new(AdmissionConfig {
                max_connections: budget.connections,
                max_per_ip: ws.max_per_ip,
                max_per_user: ws.max_per_user,
                new_per_sec: ws.new_per_sec,
                new_burst: ws.new_burst,
            }),
            connections: Connections::default(),
            users: users.clone(),
            arbiters: arbiters.clone(),
            rooms: Rooms::new(
                settings.chat.rooms(),
                SqlMessageStore::start(db.clone(), settings.chat.batch()),
                broker,
                store::presence(redis.as_ref()),
                users.clone(),
                overload.clone(),
                arbiters,
            ),
            overload,
            activities: activities.clone(),
            claims: claims.clone(),
            social: Arc::new(SocialRepo::new(&db)),
        });
        crate::memory::spawn_trimmer(Duration::from_secs(settings.server.memory_trim_secs));
        // Re-arm the expiries of holds left by a previous run (they also recover lazily on
        // first use of their activity).
        actix_web::rt::spawn(async move {
            match claims.recover().await {
                Ok(n) if n > 0 => {
                    tracing::info!(activities = n, "recovered outstanding claim holds")
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "claim recovery failed; will retry on first use"),
            }
        });
        // Alone, nothing sends on the cluster channel: applying it would only log at once
        // that a bus which never existed has closed.
        if redis.is_some() {
            hub.arbiters
                .pick()
                .spawn(corral_actors::cluster::apply(hub.clone(), cluster_rx));
        }
        // The probe runs on an actor thread: its lag is the lag actors see.
        let probe = hub.overload.clone().probe(settings.overload.to_config());
        hub.arbiters.pick().spawn(probe);
        let tls = crate::tls::server_config(&settings.server.tls_cert, &settings.server.tls_key)?;
        let edge = Edge {
            hasher: Hasher::new(&settings.auth)?,
            login_limits: LoginLimits::new(&settings.auth),
            proxies: TrustedProxies::parse(&settings.server.trusted_proxies)?,
        };
        let state = web::Data::new(AppState::new(settings, db, redis, keys, hub, metrics, edge));
        // Tokens are checked against the accounts' standing from the first request on, and
        // changes made directly in the database are picked up every refresh.
        state
            .hub
            .revocations
            .reload(state.repos.accounts.standings().await?);
        spawn_standing_refresh(
            state.clone(),
            Duration::from_millis(state.settings.auth.standing_refresh_ms),
        );
        // Timers are rebuilt from the database: every activity not over gets its actor now
        // (after the metrics recorder exists, so the actors' gauges count).
        state.hub.activities.resume().await?;
        let app_state = state.clone();
        let deadline = Duration::from_millis(state.settings.server.request_timeout_ms.max(100));
        let peers = PeerConnections::new(
            state.settings.server.max_connections_per_ip,
            state.edge.proxies.clone(),
        );
        let admin_listen = state.settings.server.admin_listen.clone();
        let public = if admin_listen.is_empty() {
            Surface::Everything
        } else {
            Surface::Public
        };
        // The public server is assembled from actix-server and actix-http rather than
        // `HttpServer`, for the one thing `HttpServer` does not offer: an upgrade hook that
        // takes a WebSocket's raw connection over from the HTTP/1 dispatcher
        // (`ws::upgrade`; docs/architecture.md, "The WebSocket path"). Its settings are
        // `HttpServer`'s, as they were.
        let mut server = actix_server::Server::build()
            .workers(workers)
            // Per worker: together they stay within the open-files budget.
            .max_concurrent_connections(budget.fit.div_ceil(workers).max(1))
            .disable_signals()
            .shutdown_timeout(5);
        let listen = &state.settings.server.listen;
        let port = match public_listeners.first().map(|l| l.local_addr()) {
            Some(Ok(addr)) => addr.port(),
            _ => 0,
        };
        for listener in public_listeners {
            let addr = listener.local_addr().map_err(bind_failed(
                listen,
                "`server.listen` (--listen, CORRAL_SERVER__LISTEN)",
            ))?;
            let host = addr.to_string();
            let (app_state, peers, tls) = (app_state.clone(), peers.clone(), tls.clone());
            // `AppConfig`'s only public constructor is the one actix's own test server uses
            // (`HttpServer` calls the crate-private `new` with the same three values).
            server = match tls {
                Some(tls) => server.listen("corral-public", listener, move || {
                    let config = AppConfig::__priv_test_new(true, host.clone(), addr);
                    public_service!(app_state, deadline, public, peers, config, addr)
                        .rustls_0_23_with_config(
                            tls.clone(),
                            TlsAcceptorConfig::default().handshake_timeout(TLS_HANDSHAKE),
                        )
                }),
                None => server.listen("corral-public", listener, move || {
                    let config = AppConfig::__priv_test_new(false, host.clone(), addr);
                    public_service!(app_state, deadline, public, peers, config, addr).tcp()
                }),
            }
            .map_err(bind_failed(
                listen,
                "`server.listen` (--listen, CORRAL_SERVER__LISTEN)",
            ))?;
        }
        let server = server.run();
        let admin = match admin_listeners {
            None => None,
            Some(listeners) => {
                let app_state = state.clone();
                let admin =
                    HttpServer::new(move || corral_app!(app_state, deadline, Surface::Operator))
                        .workers(1)
                        .max_connections(ADMIN_CONNECTIONS)
                        .disable_signals()
                        .shutdown_timeout(1)
                        .client_request_timeout(deadline);
                let admin = listeners
                    .into_iter()
                    .try_fold(admin, |admin, listener| admin.listen(listener))
                    .map_err(bind_failed(
                        &admin_listen,
                        "`server.admin_listen` (CORRAL_SERVER__ADMIN_LISTEN)",
                    ))?;
                let admin_port = admin.addrs().first().map(|a| a.port()).unwrap_or(0);
                Some((admin_port, admin.run()))
            }
        };
        Ok(Application {
            port,
            server,
            admin,
            state,
        })
    }

    /// The port the listener is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The node's shared state.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle that stops the HTTP server.
    pub fn server_handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The operators' listener's port, when `server.admin_listen` is set.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin.as_ref().map(|(port, _)| *port)
    }

    /// Serves until the public server is stopped; the operators' listener stops with it.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let admin = self.admin.map(|(_, admin)| {
            let handle = admin.handle();
            actix_web::rt::spawn(admin);
            handle
        });
        let served = self.server.await;
        if let Some(admin) = admin {
            admin.stop(true).await;
        }
        served
    }
}
