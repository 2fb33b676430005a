//! The HTTP server: the configs of the `http.service`, `http.router` and `http.endpoint`
//! kinds (checked by the registry), and a server (hyper on a Tokio runtime, on a background
//! thread per service) that runs each request through its function's pool, with its limits
//! (header and body timeouts, body size, connections, a grace period to stop).
//!
//! Plain functions are called in the [`payload`] form; `wasi:http/incoming-handler`
//! components get the whole request; a service's `metrics` path answers `GET` with
//! `funcs.metrics()`'s text. Routes are read when a service starts; the function
//! behind a route is looked up per request, so a reload swaps code without a restart.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use tokio::sync::watch;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::payload::{self, BodyKind};
use super::route::Route;
use crate::error::{Error, Kind, Result};
use crate::pool::{Completion, Handle, Pool, Task};
use crate::value::Output;

/// Request bodies above this get 413 unless the service says otherwise.
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;

/// Headers must arrive within this (and idle keep-alive connections end after it).
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
/// A request's body must arrive within this.
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 30_000;
/// Connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 1024;
/// What a stopping service gives requests in flight.
pub const DEFAULT_GRACE_MS: u64 = 5_000;

/// `kind: http.service`: a listening address.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// `host:port`; port 0 picks a free one.
    pub addr: Option<String>,
    pub lifecycle: Option<LifecycleConfig>,
    /// Request bodies above this many bytes get 413 (default 1 MiB), chunked ones too.
    pub max_body_bytes: Option<u64>,
    /// Time for a request's headers, from when the connection is ready for a request: it
    /// also ends idle keep-alive connections (default 10,000).
    pub header_timeout_ms: Option<u64>,
    /// Time for a request's whole body (default 30,000): 408 after it.
    pub body_timeout_ms: Option<u64>,
    /// Connections served at once; more wait to be accepted (default 1,024).
    pub max_connections: Option<u64>,
    /// How long `funcs.http.stop`, shutdown and closing Lua let requests in flight finish
    /// before their connections are dropped and their calls cancelled (default 5,000).
    pub grace_ms: Option<u64>,
    /// A path (`/metrics`) where `GET` gets `funcs.metrics()`'s text; none by default.
    pub metrics: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Start with the load (default false: `funcs.http.start`).
    #[serde(default)]
    pub auto_start: bool,
}

/// `kind: http.router`: a path prefix on a service (`meta.server`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    pub prefix: Option<String>,
}

/// `kind: http.endpoint`: a method and path under a router (`meta.router`), served by a
/// function.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    pub method: Option<String>,
    /// `/greet`, `/users/{id}`, `/files/{rest...}`.
    pub path: Option<String>,
    /// The function entry (its `transport` must be `wasi-http`).
    pub func: Option<String>,
}

/// A validated `http.service`.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub addr: String,
    pub auto_start: bool,
    pub max_body: u64,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub grace: Duration,
    /// Where `GET` gets the metrics text.
    pub metrics: Option<String>,
}

/// A validated `http.endpoint`, with its router's service and prefix resolved.
#[derive(Debug, Clone)]
pub struct EndpointSpec {
    /// The service of its router; none for an endpoint without `meta.router` (as the
    /// reference's page writes one), which every service serves.
    pub service: Option<String>,
    pub method: Method,
    /// Prefix and path: `/api/greet`, `/api/users/{id}`.
    pub path: String,
    pub func: String,
}

/// Finds the pool of a function by ID, per request (so that a reload swaps code without a
/// restart); holding the handle keeps that pool open until the request ends.
pub type Lookup = Arc<dyn Fn(&str) -> Result<Arc<Handle>> + Send + Sync>;

/// The Prometheus text of the pools now, for a service's `metrics` path.
pub type Metrics = Arc<dyn Fn() -> String + Send + Sync>;

/// A service listening on its background thread.
///
/// [`Server::bind`] does everything that can fail (the listener, the runtime, the thread) but
/// accepts nothing until [`Server::serve`]: a load binds its services before it commits, and
/// a server dropped unserved closes its listener (SPEC section 1: a failed load changes
/// nothing).
pub struct Server {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    /// Sent (or dropped) to let the thread serve (or end without serving).
    go: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What every request of one service shares.
struct Shared {
    routes: Vec<Route>,
    lookup: Lookup,
    metrics: Metrics,
    spec: ServiceSpec,
    id: String,
}

impl Server {
    /// Binds `spec.addr` and serves `endpoints`, finding their functions with `lookup`.
    ///
    /// # Errors
    /// As [`Server::bind`].
    pub fn start(
        id: &str,
        spec: &ServiceSpec,
        endpoints: Vec<EndpointSpec>,
        lookup: Lookup,
        metrics: Metrics,
    ) -> Result<Server> {
        let mut server = Server::bind(id, spec, endpoints, lookup, metrics)?;
        server.serve();
        Ok(server)
    }

    /// Binds `spec.addr` and makes ready to serve `endpoints` (their functions found with
    /// `lookup`), without accepting yet: connections wait in the backlog until
    /// [`Server::serve`]. Dropped before that, the listener closes and the threads end.
    ///
    /// # Errors
    /// `UNAVAILABLE` when the address cannot be bound or the service's runtime or thread
    /// cannot be started.
    pub fn bind(
        id: &str,
        spec: &ServiceSpec,
        endpoints: Vec<EndpointSpec>,
        lookup: Lookup,
        metrics: Metrics,
    ) -> Result<Server> {
        let unavailable =
            |what: String| Error::new(Kind::Unavailable, format!("http.service `{id}`: {what}"));
        let listener = std::net::TcpListener::bind(&spec.addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| unavailable(format!("bind {}: {e}", spec.addr)))?;
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let mut routes: Vec<Route> = endpoints
            .iter()
            .map(|e| Route::new(&e.method, &e.path, &e.func))
            .collect();
        // The most specific route wins, whatever order the registry holds them in.
        routes.sort_by(|a, b| a.precedence().cmp(&b.precedence()));
        let shared = Arc::new(Shared {
            routes,
            lookup,
            metrics,
            spec: spec.clone(),
            id: id.to_string(),
        });
        // The runtime and the listener's registration with it are made here, so that a
        // failure (out of file descriptors or threads) is this call's error, not a thread
        // that ends silently while its address refuses connections.
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            let e = unavailable(format!("{what}: {e}"));
            eprintln!("[{id}] {e}");
            e
        };
        // A thread per core: incoming-handlers run on them (`Pool::start_here`).
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(format!("funcs-http-{id}"))
            .enable_all()
            .build()
            .map_err(|e| failed("cannot build its runtime", &e))?;
        let listener = {
            let _entered = rt.enter();
            tokio::net::TcpListener::from_std(listener).map_err(|e| failed("cannot listen", &e))?
        };
        let (stop, stopped) = watch::channel(false);
        let (go, ready) = std::sync::mpsc::sync_channel::<()>(1);
        let grace = spec.grace;
        let thread = std::thread::Builder::new()
            .name(format!("funcs-http-{id}"))
            .spawn(move || {
                if ready.recv().is_err() {
                    // Dropped unserved: the listener closes, the runtime's threads end.
                    drop(listener);
                    drop(rt);
                    return;
                }
                rt.block_on(serve(listener, shared.clone(), stopped));
                rt.shutdown_timeout(grace);
            })
            .map_err(|e| failed("cannot start its thread", &e))?;
        Ok(Server {
            addr,
            stop,
            go: Some(go),
            thread: Some(thread),
        })
    }

    /// Starts accepting connections (once; later calls do nothing).
    pub fn serve(&mut self) {
        if let Some(go) = self.go.take() {
            // The thread waits for this; it ends only after receiving it or its sender gone.
            let _ = go.send(());
        }
    }

    /// Stops accepting, lets requests in flight finish within the service's grace period
    /// (then drops their connections and cancels their calls), and joins the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Blocks until the service stops (it does when [`Server::stop`] is called elsewhere).
    fn shutdown(&mut self) {
        // Unserved: the thread ends without serving.
        self.go.take();
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(shared.spec.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        // Past `max_connections`, clients wait in the kernel's backlog until one ends.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = stopped.changed() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // A response written in parts (an incoming-handler's headers, then its
                    // body's chunks) goes out at once: with Nagle's algorithm, a client
                    // delaying its acknowledgement held the last part 40 ms (wrk's p99).
                    let _ = stream.set_nodelay(true);
                    stream
                }
                // Out of descriptors, or a connection reset before it was accepted: back off
                // a little rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let shared = shared.clone();
        let mut stop = stopped.clone();
        connections.spawn(async move {
            let _slot = slot;
            let header_timeout = shared.spec.header_timeout;
            let service = hyper::service::service_fn(move |req| handle(req, shared.clone()));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    // Graceful: the request in flight finishes, then the connection closes.
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    // Requests in flight get the grace period; then their connections are dropped, which
    // cancels their calls (see `Cancel`).
    let all = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(shared.spec.grace, all).await.is_err() {
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// Every response's body: ours are whole, an incoming-handler's streams from the guest.
type Body = HyperOutgoingBody;

fn response(
    status: StatusCode,
    content_type: Option<&str>,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::builder().status(status);
    if let Some(ct) = content_type {
        r = r.header(hyper::header::CONTENT_TYPE, ct);
    }
    let body = Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync();
    r.body(body).expect("a valid response")
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    response(status, Some("text/plain; charset=utf-8"), body)
}

/// The response to a failed call. What the client sent wrong (400), a deadline (504) and an
/// unavailable pool (503) are told; the text of anything else (traps, guest output, paths
/// of the host) stays in the server's log, and the client gets its kind.
fn failure(shared: &Shared, e: &Error) -> Response<Body> {
    match e.kind() {
        Kind::Invalid => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        Kind::Timeout => text(StatusCode::GATEWAY_TIMEOUT, format!("{e}\n")),
        Kind::Unavailable => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
        kind => {
            eprintln!("[{}] {e}", shared.id);
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{kind}: the function failed (the service's log has the details)\n"),
            )
        }
    }
}

/// Cancels a call when its request is dropped before the call ended (the client went away,
/// or the service stopped past its grace period), and wakes its submitter if it waits for
/// room in the pool's queue (`Some` pool).
struct Cancel(Option<Arc<Completion>>, Option<Arc<Pool>>);

impl Drop for Cancel {
    fn drop(&mut self) {
        if let Some(done) = self.0.take()
            && !done.is_complete()
        {
            done.cancel(Error::new(
                Kind::Canceled,
                "the HTTP request ended before the call",
            ));
            if let Some(pool) = &self.1 {
                pool.wake_submitters();
            }
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> std::result::Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    if shared.spec.metrics.as_deref() == Some(path.as_str()) && req.method() == Method::GET {
        let text = (shared.metrics)();
        return Ok(response(
            StatusCode::OK,
            Some(crate::metrics::CONTENT_TYPE),
            text,
        ));
    }
    let routes = &shared.routes;
    let max_body = shared.spec.max_body;
    let Some(route) = routes
        .iter()
        .find(|r| r.method == req.method() && r.matches(&path))
    else {
        let status = if routes.iter().any(|r| r.matches(&path)) {
            StatusCode::METHOD_NOT_ALLOWED
        } else {
            StatusCode::NOT_FOUND
        };
        return Ok(text(
            status,
            format!("no endpoint for {} {path}\n", req.method()),
        ));
    };
    let handle = match (shared.lookup)(&route.func) {
        Ok(h) => h,
        Err(e) => return Ok(text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"))),
    };
    if handle.0.function().is_handler() {
        return Ok(incoming_handler(req, handle, &shared).await);
    }
    // The body, up to the limit and within its time; malformed requests never reach the guest.
    let collect = Limited::new(req.into_body(), max_body as usize).collect();
    let body = match tokio::time::timeout(shared.spec.body_timeout, collect).await {
        Err(_) => {
            return Ok(text(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "request body not received within {} ms\n",
                    shared.spec.body_timeout.as_millis()
                ),
            ));
        }
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Ok(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {max_body} bytes\n"),
            ));
        }
        Ok(Err(e)) => {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                format!("bad request body: {e}\n"),
            ));
        }
    };
    let function = handle.0.function().clone();
    let args = match function.lower(&payload::args(function.arity(), &body)) {
        Ok(a) => a,
        Err(e) => return Ok(text(StatusCode::BAD_REQUEST, format!("{e}\n"))),
    };
    let done = Completion::new();
    let pool = handle.0.clone();
    let _cancel = Cancel(Some(done.clone()), Some(pool.clone()));
    // Like an incoming-handler's: a task on this runtime within the pool's bound (no hand-over
    // to a blocking thread), its guest yielding the thread on epoch ticks.
    let task: Task = Box::new(move |function, options| {
        Box::pin(async move { function.run(&args, &options).await.map(Output::into_value) })
    });
    if let Err(e) = pool.start_here(task, done.clone()).await {
        return Ok(failure(&shared, &e));
    }
    done.finished().await;
    let result = Result::clone(&done.result().expect("finished"));
    Ok(
        match result.map(|out| payload::body(out.into_value(), BodyKind::of(function.results()))) {
            Ok(None) => response(StatusCode::NO_CONTENT, None, Bytes::new()),
            Ok(Some((content_type, bytes))) => response(StatusCode::OK, Some(content_type), bytes),
            Err(e) => failure(&shared, &e),
        },
    )
}

/// A request body for an incoming-handler, bounded in size (chunked bodies too) and in
/// time; past either the guest's body stream fails with the matching `error-code`.
struct Bounded {
    body: Incoming,
    left: u64,
    max: u64,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for Bounded {
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<hyper::body::Frame<Bytes>, ErrorCode>>> {
        use std::task::Poll;
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(ErrorCode::ConnectionReadTimeout)));
        }
        let frame = std::task::ready!(std::pin::Pin::new(&mut self.body).poll_frame(cx));
        Poll::Ready(frame.map(|f| {
            let f = f.map_err(ErrorCode::from)?;
            if let Some(data) = f.data_ref() {
                let n = data.len() as u64;
                if n > self.left {
                    return Err(ErrorCode::HttpRequestBodySize(Some(self.max)));
                }
                self.left -= n;
            }
            Ok(f)
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The whole request to a `wasi:http/incoming-handler` component, its response back as the
/// guest writes it.
async fn incoming_handler(
    req: Request<Incoming>,
    handle: Arc<Handle>,
    shared: &Shared,
) -> Response<Body> {
    let max_body = shared.spec.max_body;
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body) {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {max_body} bytes\n"),
        );
    }
    let req = req.map(|body| {
        Bounded {
            body,
            left: max_body,
            max: max_body,
            deadline: Box::pin(tokio::time::sleep(shared.spec.body_timeout)),
        }
        .boxed_unsync()
    });
    let (respond, response) = tokio::sync::oneshot::channel();
    let done = Completion::new();
    let mut cancel = Cancel(Some(done.clone()), None);
    let pool = handle.0.clone();
    let submitted = {
        let done = done.clone();
        let task: Task = Box::new(move |function, options| {
            Box::pin(async move { function.handle_http(req, respond, &options).await })
        });
        // On this runtime (no hand-over to another thread), within the pool's bound.
        pool.start_here(task, done).await
    };
    if let Err(e) = submitted {
        return failure(shared, &e);
    }
    match response.await {
        // The guest goes on writing the body as the response streams: no longer ours to
        // cancel (a client that leaves makes its writes fail instead).
        Ok(Ok(r)) => {
            cancel.0.take();
            r
        }
        Ok(Err(code)) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{code:?}\n")),
        // The guest ended without a response: its error says why.
        Err(_) => {
            done.finished().await;
            match Result::clone(&done.result().expect("finished")) {
                Err(e) => failure(shared, &e),
                Ok(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the handler returned without a response\n".to_string(),
                ),
            }
        }
    }
}
