//! HTTP endpoints: the `http.service`, `http.router` and `http.endpoint` kinds, and a server
//! (hyper on a Tokio runtime, on a background thread per service) that runs each request
//! through its function's pool.
//!
//! This is the plain-function form of the `wasi-http` transport: the request body is the
//! function's one string argument (none when empty) and its result is the response body.
//! Routes are read when a service starts; the function behind a route is looked up per
//! request, so a reload swaps code without a restart.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::watch;

use crate::sync::unpoison;
use crate::error::{Error, Kind, Result};
use crate::function::{BodyKind, CallOptions};
use crate::pool::{Completion, Handle};
use crate::registry::schema::{EndpointConfig, RouterConfig, ServiceConfig};
use crate::registry::source::RawEntry;
use crate::registry::{Entry, Registry};
use crate::value::Value;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

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

/// A string of the entry's `meta` map (`meta.server`, `meta.router`), or "".
fn meta(entry: &RawEntry, key: &str) -> String {
    entry
        .meta
        .as_ref()
        .and_then(|m| m.get(key))
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

fn invalid(entry: &RawEntry, field: &str, message: String) -> Error {
    let field = field.to_string();
    entry.error(Error::invalid(message).with(|d| d.field = Some(field)))
}

pub(crate) fn service(entry: &RawEntry, c: ServiceConfig) -> Result<ServiceSpec> {
    let addr = c.addr.unwrap_or_default();
    if addr
        .rsplit_once(':')
        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        return Err(invalid(
            entry,
            "addr",
            format!("addr must be host:port, got `{addr}`"),
        ));
    }
    // Zero and absurd values would make a service that serves nothing or never stops.
    let ms = |field: &str, v: Option<u64>, default: u64| match v {
        None => Ok(Duration::from_millis(default)),
        Some(ms) if (1..=crate::limits::MAX_TIMEOUT_MS).contains(&ms) => {
            Ok(Duration::from_millis(ms))
        }
        Some(ms) => Err(invalid(
            entry,
            field,
            format!("{field} must be between 1 and 2^40, got {ms}"),
        )),
    };
    let max_connections = match c.max_connections {
        None => DEFAULT_MAX_CONNECTIONS,
        Some(n) if (1..=1 << 20).contains(&n) => n,
        Some(n) => {
            return Err(invalid(
                entry,
                "max_connections",
                format!("max_connections must be between 1 and 1048576, got {n}"),
            ));
        }
    };
    Ok(ServiceSpec {
        addr,
        auto_start: c.lifecycle.is_some_and(|l| l.auto_start),
        max_body: c.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY),
        header_timeout: ms(
            "header_timeout_ms",
            c.header_timeout_ms,
            DEFAULT_HEADER_TIMEOUT_MS,
        )?,
        body_timeout: ms(
            "body_timeout_ms",
            c.body_timeout_ms,
            DEFAULT_BODY_TIMEOUT_MS,
        )?,
        max_connections: max_connections as usize,
        grace: ms("grace_ms", c.grace_ms, DEFAULT_GRACE_MS)?,
    })
}

pub(crate) fn router<'a>(
    entry: &RawEntry,
    c: RouterConfig,
    lookup: impl Fn(&str) -> Option<&'a Entry>,
) -> Result<Entry> {
    let service = entry.resolve_id(&meta(entry, "server"));
    if !matches!(lookup(&service), Some(Entry::Service(_))) {
        return Err(invalid(
            entry,
            "meta.server",
            format!("unknown http.service `{service}`"),
        ));
    }
    let prefix = c
        .prefix
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    if !prefix.is_empty() && !prefix.starts_with('/') {
        return Err(invalid(
            entry,
            "prefix",
            format!("prefix must start with `/`, got `{prefix}`"),
        ));
    }
    Ok(Entry::Router { service, prefix })
}

pub(crate) fn endpoint<'a>(
    entry: &RawEntry,
    c: EndpointConfig,
    lookup: impl Fn(&str) -> Option<&'a Entry>,
) -> Result<Entry> {
    let router = meta(entry, "router");
    let (service, prefix) = if router.is_empty() {
        (None, "")
    } else {
        let router = entry.resolve_id(&router);
        let Some(Entry::Router { service, prefix }) = lookup(&router) else {
            return Err(invalid(
                entry,
                "meta.router",
                format!("unknown http.router `{router}`"),
            ));
        };
        (Some(service.clone()), prefix.as_str())
    };
    let method = c.method.unwrap_or_default().to_ascii_uppercase();
    let method = Method::from_bytes(method.as_bytes())
        .ok()
        .filter(|_| !method.is_empty())
        .ok_or_else(|| invalid(entry, "method", format!("invalid method `{method}`")))?;
    let path = c.path.unwrap_or_default();
    if !path.starts_with('/') {
        return Err(invalid(
            entry,
            "path",
            format!("path must start with `/`, got `{path}`"),
        ));
    }
    let func = entry.resolve_id(&c.func.unwrap_or_default());
    match lookup(&func) {
        Some(Entry::Function(h)) if h.0.function().is_http() => {}
        Some(Entry::Function(_)) => {
            return Err(invalid(
                entry,
                "func",
                format!("function `{func}` does not have `transport: wasi-http`"),
            ));
        }
        _ => return Err(invalid(entry, "func", format!("unknown function `{func}`"))),
    }
    Ok(Entry::Endpoint(EndpointSpec {
        service,
        method,
        path: format!("{prefix}{path}"),
        func,
    }))
}

/// Two endpoints of one service with the same method and path in one load fail it.
pub(crate) fn check_duplicates(pending: &[(String, Entry)]) -> Result<()> {
    let mut seen: HashMap<(Option<String>, Method, String), &str> = HashMap::new();
    for (id, e) in pending {
        if let Entry::Endpoint(ep) = e {
            let key = (ep.service.clone(), ep.method.clone(), ep.path.clone());
            if let Some(other) = seen.insert(key, id) {
                return Err(Error::invalid(format!(
                    "endpoints `{other}` and `{id}` both serve {} {}",
                    ep.method, ep.path
                ))
                .with(|d| d.entry = Some(id.clone())));
            }
        }
    }
    Ok(())
}

/// A route of a running service.
#[derive(Debug, Clone)]
struct Route {
    method: Method,
    segments: Vec<Segment>,
    func: String,
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param,
    Rest,
}

impl Route {
    fn new(spec: &EndpointSpec) -> Route {
        let segments = spec
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(p) if p.ends_with("...") => Segment::Rest,
                    Some(_) => Segment::Param,
                    None => Segment::Literal(s.to_string()),
                },
            )
            .collect();
        Route {
            method: spec.method.clone(),
            segments,
            func: spec.func.clone(),
        }
    }

    /// Sorts routes most specific first: literal segments before parameters before a rest,
    /// segment by segment, then longer paths first.
    fn precedence(&self) -> (Vec<u8>, std::cmp::Reverse<usize>) {
        let ranks = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 0,
                Segment::Param => 1,
                Segment::Rest => 2,
            })
            .collect();
        (ranks, std::cmp::Reverse(self.segments.len()))
    }

    fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut i = 0;
        for seg in &self.segments {
            match seg {
                Segment::Rest => return true,
                Segment::Param if i < parts.len() => i += 1,
                Segment::Literal(l) if parts.get(i) == Some(&l.as_str()) => i += 1,
                _ => return false,
            }
        }
        i == parts.len()
    }
}

/// A service listening on its background thread.
pub struct Server {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

/// What every request of one service shares.
struct Shared {
    routes: Vec<Route>,
    registry: Arc<RwLock<Registry>>,
    spec: ServiceSpec,
    id: String,
}

impl Server {
    /// Binds `spec.addr` and serves `endpoints`, looking functions up in `registry`.
    ///
    /// # Errors
    /// `UNAVAILABLE` when the address cannot be bound.
    pub fn start(
        id: &str,
        spec: &ServiceSpec,
        endpoints: Vec<EndpointSpec>,
        registry: Arc<RwLock<Registry>>,
    ) -> Result<Server> {
        let listener = std::net::TcpListener::bind(&spec.addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| {
                Error::new(
                    Kind::Unavailable,
                    format!("http.service `{id}`: bind {}: {e}", spec.addr),
                )
            })?;
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let mut routes: Vec<Route> = endpoints.iter().map(Route::new).collect();
        // The most specific route wins, whatever order the registry holds them in.
        routes.sort_by(|a, b| a.precedence().cmp(&b.precedence()));
        let shared = Arc::new(Shared {
            routes,
            registry,
            spec: spec.clone(),
            id: id.to_string(),
        });
        let (stop, stopped) = watch::channel(false);
        let grace = spec.grace;
        let thread = std::thread::Builder::new()
            .name(format!("funcs-http-{id}"))
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(serve(listener, shared, stopped));
                // Submitters still blocked on a full queue are not waited for past the grace.
                rt.shutdown_timeout(grace);
            })
            .map_err(|e| Error::internal(format!("spawning the HTTP thread: {e}")))?;
        Ok(Server {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops accepting, lets requests in flight finish within the service's grace period
    /// (then drops their connections and cancels their calls), and joins the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Blocks until the service stops (it does when [`Server::stop`] is called elsewhere).
    fn shutdown(&mut self) {
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
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
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
                Ok((stream, _)) => stream,
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
/// or the service stopped past its grace period).
struct Cancel(Option<Arc<Completion>>);

impl Drop for Cancel {
    fn drop(&mut self) {
        if let Some(done) = self.0.take()
            && !done.is_complete()
        {
            done.cancel(Error::new(
                Kind::Canceled,
                "the HTTP request ended before the call",
            ));
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> std::result::Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
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
    let handle = unpoison(shared.registry.read())
        .function(&route.func);
    let handle = match handle {
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
    let args = match function.arity() {
        0 => vec![],
        _ if body.is_empty() => vec![Value::Nil],
        _ => vec![Value::Bytes(body.to_vec())],
    };
    let args = match function.lower(&args) {
        Ok(a) => a,
        Err(e) => return Ok(text(StatusCode::BAD_REQUEST, format!("{e}\n"))),
    };
    let done = Completion::new();
    let _cancel = Cancel(Some(done.clone()));
    let pool = handle.0.clone();
    let submitted = {
        let done = done.clone();
        // A full static queue blocks the submitter: backpressure, off the server's thread.
        tokio::task::spawn_blocking(move || pool.submit(args, CallOptions::default(), done))
            .await
            .unwrap_or_else(|e| Err(Error::internal(format!("submitting: {e}"))))
    };
    if let Err(e) = submitted {
        return Ok(failure(&shared, &e));
    }
    done.finished().await;
    let result = done.with_result(|r| r.cloned().expect("finished"));
    Ok(match result {
        Ok(Value::Nil) => response(StatusCode::NO_CONTENT, None, Bytes::new()),
        Ok(Value::Bytes(b)) if function.body_kind() == BodyKind::Text => {
            response(StatusCode::OK, Some("text/plain; charset=utf-8"), b)
        }
        Ok(Value::Bytes(b)) if function.body_kind() == BodyKind::Bytes => {
            response(StatusCode::OK, Some("application/octet-stream"), b)
        }
        Ok(v) => response(
            StatusCode::OK,
            Some("application/json"),
            serde_json::to_vec(&to_json(&v)).expect("JSON of plain values"),
        ),
        Err(e) => failure(&shared, &e),
    })
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
    let mut cancel = Cancel(Some(done.clone()));
    let pool = handle.0.clone();
    let submitted = {
        let done = done.clone();
        tokio::task::spawn_blocking(move || pool.submit_http(req, respond, done))
            .await
            .unwrap_or_else(|e| Err(Error::internal(format!("submitting: {e}"))))
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
            match done.with_result(|r| r.cloned().expect("finished")) {
                Err(e) => failure(shared, &e),
                Ok(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the handler returned without a response\n".to_string(),
                ),
            }
        }
    }
}

/// A result as JSON: records are objects, lists arrays, bytes strings (lossy UTF-8).
fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        Value::Array(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(fields) => J::Object(
            fields
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                        Value::Int(i) => i.to_string(),
                        other => other.type_name().to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        _ => J::Null,
    }
}
