//! Outgoing HTTP from guests (`wasi:http/outgoing-handler`, SPEC section 11): how a request a
//! guest makes is sent, under the entry's `http_client` policy ([`Policy`]).
//!
//! wasmtime-wasi-http turns the guest's request into a `hyper` request and hands it to
//! [`Outgoing::send_request`], which refuses a host the policy does not list, resolves the
//! name, refuses the request if any address it got is private (unless the policy allows
//! them), and connects to an address it checked: nothing is looked up twice, so a name cannot
//! be rebound between the check and the connection. HTTPS uses rustls with the webpki roots
//! and checks the name. Every refusal reaches the guest as a `wasi:http` `error-code`
//! (`HTTP-request-denied`, `destination-IP-prohibited`, ...), not as a trap.
//!
//! A request lives at most `timeout_ms`, response body included; its body sizes are bounded
//! both ways. It never outlives its call: the connections a call opened are shut down when
//! the call ends (done, past its deadline, cancelled, or its store dropped at shutdown),
//! whatever runtime would otherwise have to drive their tasks to an end. A name lookup cannot
//! be stopped: one past its request's time keeps its place among the process's
//! [`MAX_LOOKUPS`] until the resolver answers. Redirects are not followed: the guest sees
//! them. This module does not link the interfaces (`wasi.rs` does) and knows nothing of Lua.

mod body;
mod policy;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use body::{Direction, Metered};
pub use policy::{HttpClientConfig, Policy, is_private};

/// Requests one call may have in progress at once (looking up, connecting or open); past it a
/// request fails with `connection-limit-reached` (a guest cannot hold the host's sockets, or
/// its lookup threads, without bound).
pub const MAX_CONNECTIONS: usize = 64;

/// What `send_request` gives back: the response, and the future that drives the connection
/// while the guest reads the body.
type Sent = (hyper::Response<WasiBody>, Done);
type Done = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

/// An entry's outgoing HTTP: its policy and its counters, shared by all its calls.
#[derive(Debug, Default)]
pub struct HttpClient {
    pub policy: Policy,
    pub stats: ClientStats,
}

/// Counters of one entry's outgoing requests (`funcs.stats`, `funcs.metrics`).
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Requests the guest made, refused ones included.
    pub requests: AtomicU64,
    /// Requests the policy refused (host not listed, private address).
    pub denied: AtomicU64,
    /// Request body bytes sent.
    pub sent_bytes: AtomicU64,
    /// Response body bytes received.
    pub received_bytes: AtomicU64,
}

impl ClientStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn read(&self) -> ClientCounts {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientCounts {
            requests: read(&self.requests),
            denied: read(&self.denied),
            sent_bytes: read(&self.sent_bytes),
            received_bytes: read(&self.received_bytes),
        }
    }
}

/// [`ClientStats`] read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCounts {
    pub requests: u64,
    pub denied: u64,
    pub sent_bytes: u64,
    pub received_bytes: u64,
}

/// The outgoing-request hooks of one store: the entry's client (none when the entry does not
/// grant `wasi:http`) and the connections of the call in progress. Cheap to make and to
/// finish for entries that make no requests.
pub struct Outgoing {
    client: Option<Arc<HttpClient>>,
    connections: Option<Arc<Connections>>,
}

impl Outgoing {
    pub fn new(client: Option<Arc<HttpClient>>) -> Outgoing {
        Outgoing {
            client,
            connections: None,
        }
    }

    /// The call ended: its connections are shut down.
    pub fn finish(&mut self) {
        if let Some(connections) = self.connections.take() {
            connections.abort_all();
        }
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        self.finish();
    }
}

impl WasiHttpHooks for Outgoing {
    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _done: Done,
    ) -> Box<dyn Future<Output = Result<Sent, HttpError>> + Send> {
        let Some(client) = self.client.clone() else {
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        };
        let connections = self.connections.get_or_insert_default().clone();
        let deadline = Instant::now() + Duration::from_millis(client.policy.timeout_ms);
        Box::new(send(request, options, client, deadline, connections))
    }
}

/// Sends one request under the policy, within `deadline`.
async fn send(
    mut request: Request<WasiBody>,
    options: Option<RequestOptions>,
    client: Arc<HttpClient>,
    deadline: Instant,
    connections: Arc<Connections>,
) -> Result<Sent, HttpError> {
    let stats = &client.stats;
    let policy = &client.policy;
    ClientStats::add(&stats.requests, 1);
    let uri = request.uri();
    let https = uri.scheme() == Some(&hyper::http::uri::Scheme::HTTPS);
    let authority = uri.authority().ok_or(HttpError::HttpRequestUriInvalid)?;
    // No user info (it would reach the server in `Host`), no port that is not one.
    if authority.as_str().contains('@') || (authority.port().is_some() && uri.port_u16().is_none())
    {
        return Err(HttpError::HttpRequestUriInvalid);
    }
    let host = authority.host().to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    if !policy.allows(&host, port) {
        ClientStats::add(&stats.denied, 1);
        return Err(HttpError::HttpRequestDenied);
    }
    // A body announced past the bound is refused before anything is sent.
    if let Some(n) = content_length(request.headers()).filter(|n| *n > policy.max_request_bytes) {
        return Err(HttpError::HttpRequestBodySize(Some(n)));
    }
    // Reserved before the lookup: lookups and connections in progress count alike.
    let slot = connections
        .reserve()
        .ok_or(HttpError::ConnectionLimitReached)?;
    let options = options.unwrap_or_default();
    let until = |limit: Option<Duration>| {
        let end = limit.map_or(deadline, |d| deadline.min(Instant::now() + d));
        tokio::time::Instant::from_std(end)
    };
    let target = Target::new(&host, port, https);
    let addrs = resolve(&client, &target, until(None)).await?;
    let (mut sender, conn) = open(&target, &addrs, &slot, until(options.connect_timeout)).await?;

    // The request line carries the path only (no proxy); the body is counted and bounded.
    let path = match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("") => "/".to_string(),
        Some(p) if p.starts_with('?') => format!("/{p}"),
        Some(p) => p.to_string(),
    };
    *request.uri_mut() = path.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let head_only = request.method() == hyper::Method::HEAD;
    let request = request.map(|body| {
        let max = policy.max_request_bytes;
        Metered::new(body, Direction::Sent, max, None, client.clone()).boxed_unsync()
    });

    // Wait for the response head while driving the connection.
    let mut response = pin!(tokio::time::timeout_at(
        until(options.first_byte_timeout),
        sender.send_request(request)
    ));
    let mut conn = Some(conn);
    let head = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = response.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        if let Some(c) = conn.as_mut()
            && let Poll::Ready(r) = std::pin::Pin::new(c).poll(cx)
        {
            conn = None;
            if let Err(e) = r {
                return Poll::Ready(Ok(Err(e)));
            }
        }
        Poll::Pending
    })
    .await
    .map_err(|_| HttpError::ConnectionReadTimeout)??;
    // A body announced past the bound fails the request; one that grows past it, its stream.
    let max = policy.max_response_bytes;
    let bodiless = head_only || head.status() == hyper::StatusCode::NOT_MODIFIED;
    if let Some(n) = content_length(head.headers()).filter(|n| *n > max && !bodiless) {
        return Err(HttpError::HttpResponseBodySize(Some(n)));
    }
    let end = tokio::time::Instant::from_std(deadline);
    let response = head.map(|incoming| {
        let incoming = incoming.map_err(HttpError::from);
        Metered::new(
            incoming,
            Direction::Received,
            max,
            Some(end),
            client.clone(),
        )
        .boxed_unsync()
    });
    // The connection goes on (the body) until the deadline.
    let io = async move {
        let _slot = slot;
        match conn {
            Some(conn) => match tokio::time::timeout_at(end, conn).await {
                Ok(r) => r.map_err(HttpError::from),
                Err(_) => Err(HttpError::HttpResponseTimeout),
            },
            None => Ok(()),
        }
    };
    Ok((response, Box::new(io)))
}

/// Where a request goes: the host as the URI names it (IPv6 without brackets), its IP when it
/// is a literal, the port, and whether TLS is spoken.
struct Target<'a> {
    host: &'a str,
    ip: Option<IpAddr>,
    port: u16,
    https: bool,
}

impl<'a> Target<'a> {
    fn new(host: &'a str, port: u16, https: bool) -> Self {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Target {
            host,
            ip: host.parse().ok(),
            port,
            https,
        }
    }
}

/// The addresses of the target, looked up once (a literal is its own), every one of them
/// checked against the policy: only these are connected to.
async fn resolve(
    client: &HttpClient,
    target: &Target<'_>,
    until: tokio::time::Instant,
) -> Result<Vec<SocketAddr>, HttpError> {
    let addrs: Vec<SocketAddr> = match target.ip {
        Some(ip) => vec![SocketAddr::new(ip, target.port)],
        None => lookup(&LOOKUPS, system_lookup, target.host, target.port, until).await?,
    };
    if addrs.is_empty() {
        return Err(HttpError::DestinationNotFound);
    }
    if !client.policy.allow_private_ip && addrs.iter().any(|a| is_private(a.ip())) {
        ClientStats::add(&client.stats.denied, 1);
        return Err(HttpError::DestinationIpProhibited);
    }
    Ok(addrs)
}

/// DNS lookups in flight in the process at once. A lookup runs on a blocking thread and
/// cannot be stopped: one past its request's deadline goes on until the resolver answers,
/// and keeps its place until then; past the bound a request fails at once (`dns-error`)
/// rather than start one more thread.
pub const MAX_LOOKUPS: usize = 64;

static LOOKUPS: LazyLock<Lookups> = LazyLock::new(|| Lookups::new(MAX_LOOKUPS));

/// Places for lookups in flight, up to `bound`.
struct Lookups {
    permits: Arc<tokio::sync::Semaphore>,
    bound: usize,
}

impl Lookups {
    fn new(bound: usize) -> Lookups {
        Lookups {
            permits: Arc::new(tokio::sync::Semaphore::new(bound)),
            bound,
        }
    }
}

/// The system's resolver (`getaddrinfo`), blocking.
fn system_lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs;
    (host, port).to_socket_addrs().map(Iterator::collect)
}

/// Looks `host` up with `resolver` on a blocking thread, within `until`, holding one of
/// `lookups`' places for as long as the resolver runs (not only until the request gives up).
async fn lookup<F>(
    lookups: &Lookups,
    resolver: F,
    host: &str,
    port: u16,
    until: tokio::time::Instant,
) -> Result<Vec<SocketAddr>, HttpError>
where
    F: FnOnce(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + 'static,
{
    let dns_error = |text: String| HttpError::DnsError {
        rcode: Some(text),
        info_code: None,
    };
    let Ok(permit) = lookups.permits.clone().try_acquire_owned() else {
        return Err(dns_error(format!(
            "too many DNS lookups in flight (the bound is {}): `{host}` was not looked up",
            lookups.bound
        )));
    };
    let name = host.to_string();
    // The permit goes with the lookup: a request that gives up does not free its place.
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        resolver(&name, port)
    });
    match tokio::time::timeout_at(until, task).await {
        Err(_) => Err(HttpError::DnsTimeout),
        Ok(Err(e)) => Err(dns_error(format!("the lookup of `{host}` failed: {e}"))),
        Ok(Ok(Err(e))) => Err(dns_error(e.to_string())),
        Ok(Ok(Ok(found))) => Ok(found),
    }
}

/// An HTTP/1 connection to the first of `addrs` that answers (TLS for https, the target's
/// name checked), recorded in the request's slot, all within `until`.
async fn open(
    target: &Target<'_>,
    addrs: &[SocketAddr],
    slot: &Slot,
    until: tokio::time::Instant,
) -> Result<
    (
        http1::SendRequest<WasiBody>,
        http1::Connection<TokioIo<Box<dyn Stream>>, WasiBody>,
    ),
    HttpError,
> {
    let connect = async {
        let mut last = HttpError::DestinationUnavailable;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    last = HttpError::ConnectionRefused
                }
                Err(e) => last = HttpError::Connect(e),
            }
        }
        Err(last)
    };
    let stream = tokio::time::timeout_at(until, connect)
        .await
        .map_err(|_| HttpError::ConnectionTimeout)??;
    slot.connected(&stream)?;
    let stream: Box<dyn Stream> = if target.https {
        let name = match target.ip {
            Some(ip) => rustls::pki_types::ServerName::IpAddress(ip.into()),
            None => rustls::pki_types::ServerName::try_from(target.host.to_string())
                .map_err(|_| HttpError::HttpRequestUriInvalid)?,
        };
        let tls = tokio_rustls::TlsConnector::from(TLS.clone()).connect(name, stream);
        let tls = tokio::time::timeout_at(until, tls)
            .await
            .map_err(|_| HttpError::ConnectionTimeout)?
            .map_err(tls_error)?;
        Box::new(tls)
    } else {
        Box::new(stream)
    };
    let handshake = http1::Builder::new().handshake(TokioIo::new(stream));
    tokio::time::timeout_at(until, handshake)
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::from)
}

/// The `Content-Length` a head announces.
fn content_length(headers: &hyper::HeaderMap) -> Option<u64> {
    headers
        .get(hyper::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// What a connection runs on: TCP, or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// The client TLS config: the webpki roots, ring, TLS 1.2 and 1.3.
static TLS: LazyLock<Arc<rustls::ClientConfig>> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
});

/// A failed TLS handshake as the guest sees it.
fn tls_error(e: io::Error) -> HttpError {
    match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(_)) => HttpError::TlsCertificateError,
        Some(rustls::Error::AlertReceived(alert)) => HttpError::TlsAlertReceived {
            alert_id: Some(u8::from(*alert)),
            alert_message: Some(format!("{alert:?}")),
        },
        Some(_) => HttpError::TlsProtocolError,
        None => HttpError::Tls(e),
    }
}

/// The requests of the call in progress, each with its socket once connected (a duplicate of
/// it, which is enough to shut the socket down from any thread).
#[derive(Default)]
struct Connections {
    state: Mutex<Requests>,
}

#[derive(Default)]
struct Requests {
    next: u64,
    /// Set when the call ended: nothing connects any more.
    closed: bool,
    /// Requests in progress (from before their lookup), their socket once connected.
    open: HashMap<u64, Option<std::net::TcpStream>>,
}

impl Connections {
    /// A place for one more request of this call, until the slot is dropped; `None` past
    /// [`MAX_CONNECTIONS`].
    fn reserve(self: &Arc<Self>) -> Option<Slot> {
        let mut st = crate::sync::unpoison(self.state.lock());
        if st.open.len() >= MAX_CONNECTIONS {
            return None;
        }
        st.next += 1;
        let id = st.next;
        st.open.insert(id, None);
        Some(Slot {
            id,
            connections: self.clone(),
        })
    }

    /// The call ended: every socket is shut down, and none may connect any more.
    fn abort_all(&self) {
        let mut st = crate::sync::unpoison(self.state.lock());
        st.closed = true;
        for socket in st.open.values().flatten() {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// One request's place among its call's requests.
struct Slot {
    id: u64,
    connections: Arc<Connections>,
}

impl Slot {
    /// Records the request's socket, so that the end of the call shuts it down; refused (the
    /// socket shut down) when the call has ended already.
    fn connected(&self, stream: &TcpStream) -> Result<(), HttpError> {
        let dup = stream
            .as_fd()
            .try_clone_to_owned()
            .map(std::net::TcpStream::from)
            .map_err(HttpError::Connect)?;
        let mut st = crate::sync::unpoison(self.connections.state.lock());
        if st.closed {
            let _ = dup.shutdown(std::net::Shutdown::Both);
            return Err(HttpError::ConnectionTerminated);
        }
        st.open.insert(self.id, Some(dup));
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        crate::sync::unpoison(self.connections.state.lock())
            .open
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn open(connections: &Connections) -> usize {
        crate::sync::unpoison(connections.state.lock()).open.len()
    }

    #[test]
    fn a_finished_call_shuts_its_connections_down_and_takes_no_more() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(Connections::default());
        let connect = || rt.block_on(TcpStream::connect(addr)).unwrap();
        let (a, b, c) = (connect(), connect(), connect());
        let (mut server_a, _) = listener.accept().unwrap();
        let (_server_b, _) = listener.accept().unwrap();
        let (mut server_c, _) = listener.accept().unwrap();
        let slot_a = connections.reserve().unwrap();
        let slot_b = connections.reserve().unwrap();
        // A request still resolving or connecting when the call ends.
        let slot_c = connections.reserve().unwrap();
        slot_a.connected(&a).unwrap();
        slot_b.connected(&b).unwrap();
        assert_eq!(open(&connections), 3);
        drop(slot_b);
        assert_eq!(open(&connections), 2);
        // The call ends while `a` is still held by its (never again polled) task.
        connections.abort_all();
        let mut buf = [0; 8];
        server_a
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(server_a.read(&mut buf).unwrap(), 0, "the peer sees the end");
        // The late one may not go on.
        assert!(matches!(
            slot_c.connected(&c),
            Err(HttpError::ConnectionTerminated)
        ));
        server_c
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(server_c.read(&mut buf).unwrap(), 0);
        drop((slot_a, slot_c));
        assert_eq!(open(&connections), 0);
    }

    #[test]
    fn a_lookup_past_its_deadline_keeps_its_place_until_the_resolver_answers() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let lookups = Lookups::new(2);
        let found: SocketAddr = "192.0.2.1:80".parse().unwrap();
        // A resolver that hangs until told to answer.
        let (answer, hung) = std::sync::mpsc::channel::<()>();
        let hung = Arc::new(Mutex::new(hung));
        let hanging = || {
            let hung = hung.clone();
            move |_: &str, _: u16| {
                let _ = crate::sync::unpoison(hung.lock()).recv();
                Ok(vec![found])
            }
        };
        let quick = move |_: &str, _: u16| Ok(vec![found]);
        let soon = || tokio::time::Instant::now() + Duration::from_millis(20);
        let later = || tokio::time::Instant::now() + Duration::from_secs(60);
        for _ in 0..2 {
            let r = rt.block_on(lookup(&lookups, hanging(), "hangs.test", 80, soon()));
            assert!(matches!(r, Err(HttpError::DnsTimeout)), "{r:?}");
        }
        // Both still run: no third, at once, whatever its deadline.
        match rt.block_on(lookup(&lookups, quick, "quick.test", 80, later())) {
            Err(HttpError::DnsError {
                rcode: Some(text), ..
            }) => assert_eq!(
                text,
                "too many DNS lookups in flight (the bound is 2): `quick.test` was not looked up"
            ),
            r => panic!("expected a dns-error, got {r:?}"),
        }
        // Once they end, their places are free again.
        answer.send(()).unwrap();
        answer.send(()).unwrap();
        let both = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), lookups.permits.acquire_many(2)).await
        });
        drop(both.expect("the hung lookups ended").unwrap());
        let r = rt.block_on(lookup(&lookups, quick, "quick.test", 80, later()));
        assert_eq!(r.unwrap(), vec![found]);
    }

    #[test]
    fn a_call_has_at_most_max_connections_requests_in_progress() {
        let connections = Arc::new(Connections::default());
        let slots: Vec<_> = (0..MAX_CONNECTIONS)
            .map(|_| connections.reserve().unwrap())
            .collect();
        assert!(connections.reserve().is_none());
        drop(slots);
        assert!(connections.reserve().is_some());
    }
}
