//! The import sandbox: which host interfaces an entry gets, and the WASI context of each call.
//!
//! An entry's `imports` name groups (`wasi:cli`) or single interfaces (`wasi:cli/stdout`);
//! only those are linked, everything else a component imports becomes a stub that traps
//! with the import's name (`function::link`). `wasi:io` comes along with any group that hands
//! out its streams or pollables, since on its own it grants nothing.
//!
//! The WASI context is made per call from the entry's [`WasiSpec`]: args, cwd, the mapped
//! environment variables (read when the call starts), the mounts, and stdout and stderr that
//! go to the host's stdout and stderr, each line prefixed by the entry ID. Nothing of the host
//! is visible otherwise.

use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime::component::{HasData, Linker, ResourceTable, ResourceType};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream, WasiCli, WasiCliView as _};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets};
use wasmtime_wasi::p2::{OutputStream, StreamError, StreamResult};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView as _};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiView};
use wasmtime_wasi_http::{WasiHttp, WasiHttpView};

use crate::error::{Error, Kind};

/// The interfaces we can link, as `package/interface` without versions.
const INTERFACES: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/ip-name-lookup",
    // Outgoing requests, under the entry's `http_client` policy (`outgoing`).
    "wasi:http/types",
    "wasi:http/outgoing-handler",
];

/// Groups whose resources are `wasi:io` streams or pollables.
const NEEDS_IO: &[&str] = &[
    "wasi:clocks",
    "wasi:cli",
    "wasi:filesystem",
    "wasi:sockets",
    "wasi:http",
];

/// The interfaces an entry's `imports` grant, resolved at load.
///
/// # Errors
/// A message naming an import we do not know.
pub fn grants(imports: &[String]) -> Result<Vec<&'static str>, String> {
    fn matching(name: &str) -> impl Iterator<Item = &'static str> + '_ {
        INTERFACES.iter().copied().filter(move |i| {
            *i == name || (i.starts_with(name) && i.as_bytes().get(name.len()) == Some(&b'/'))
        })
    }
    let mut granted: Vec<&'static str> = Vec::new();
    for import in imports {
        // Versions are ignored: `wasi:clocks/monotonic-clock@0.2.8`.
        let name = match import.split('@').next().unwrap_or_default() {
            "wasi:poll" => "wasi:io/poll",
            other => other,
        };
        let mut found: Vec<_> = matching(name).collect();
        if found.is_empty() {
            return Err(format!("unknown import `{import}`"));
        }
        if NEEDS_IO.iter().any(|g| name.starts_with(g)) {
            found.extend(matching("wasi:io"));
        }
        // Requests are `wasi:http/types` resources.
        if name == "wasi:http/outgoing-handler" {
            found.extend(matching("wasi:http/types"));
        }
        for i in found {
            if !granted.contains(&i) {
                granted.push(i);
            }
        }
    }
    Ok(granted)
}

/// Links the granted interfaces (async host functions) into a component linker.
///
/// # Errors
/// wasmtime's, for a name defined twice (not expected).
pub fn link<T: WasiView + WasiHttpView + 'static>(
    linker: &mut Linker<T>,
    granted: &[&str],
) -> wasmtime::Result<()> {
    use wasmtime_wasi_http::p2::bindings::http;
    let l = linker;
    for name in granted {
        match *name {
            "wasi:io/error" => wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<
                T,
                HasIo,
            >(l, |t| t.ctx().table)?,
            "wasi:io/poll" => {
                wasmtime_wasi_io::bindings::wasi::io::poll::add_to_linker::<T, HasIo>(l, |t| {
                    t.ctx().table
                })?
            }
            "wasi:io/streams" => wasmtime_wasi_io::bindings::wasi::io::streams::add_to_linker::<
                T,
                HasIo,
            >(l, |t| t.ctx().table)?,
            "wasi:clocks/wall-clock" => {
                clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?
            }
            "wasi:clocks/monotonic-clock" => {
                clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?
            }
            "wasi:cli/environment" => cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?,
            "wasi:cli/exit" => cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?,
            "wasi:cli/stdin" => cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?,
            "wasi:cli/stdout" => cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?,
            "wasi:cli/stderr" => cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?,
            "wasi:cli/terminal-input" => {
                cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?
            }
            "wasi:cli/terminal-output" => {
                cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?
            }
            "wasi:cli/terminal-stdin" => {
                cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?
            }
            "wasi:cli/terminal-stdout" => {
                cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?
            }
            "wasi:cli/terminal-stderr" => {
                cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?
            }
            "wasi:filesystem/types" => {
                filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?
            }
            "wasi:filesystem/preopens" => {
                filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?
            }
            "wasi:random/random" => {
                random::random::add_to_linker::<T, WasiRandom>(l, |t| t.ctx().ctx.random())?
            }
            "wasi:random/insecure" => {
                random::insecure::add_to_linker::<T, WasiRandom>(l, |t| t.ctx().ctx.random())?
            }
            "wasi:random/insecure-seed" => {
                random::insecure_seed::add_to_linker::<T, WasiRandom>(l, |t| t.ctx().ctx.random())?
            }
            "wasi:sockets/network" => sockets::network::add_to_linker::<T, WasiSockets>(
                l,
                &Default::default(),
                T::sockets,
            )?,
            "wasi:sockets/instance-network" => {
                sockets::instance_network::add_to_linker::<T, WasiSockets>(l, T::sockets)?
            }
            "wasi:sockets/tcp" => sockets::tcp::add_to_linker::<T, WasiSockets>(l, T::sockets)?,
            "wasi:sockets/tcp-create-socket" => {
                sockets::tcp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?
            }
            "wasi:sockets/udp" => sockets::udp::add_to_linker::<T, WasiSockets>(l, T::sockets)?,
            "wasi:sockets/udp-create-socket" => {
                sockets::udp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?
            }
            "wasi:sockets/ip-name-lookup" => {
                sockets::ip_name_lookup::add_to_linker::<T, WasiSockets>(l, T::sockets)?
            }
            "wasi:http/types" => {
                http::types::add_to_linker::<_, WasiHttp>(l, &Default::default(), T::http)?
            }
            "wasi:http/outgoing-handler" => {
                http::outgoing_handler::add_to_linker::<_, WasiHttp>(l, T::http)?
            }
            other => unreachable!("`{other}` is in INTERFACES"),
        }
    }
    Ok(())
}

/// Links `wasi:http/types` for an incoming-handler component unless `imports` granted it
/// already, and records it as granted.
///
/// # Errors
/// wasmtime's, for a name defined twice (not expected).
pub fn link_http<T: WasiView + WasiHttpView + 'static>(
    linker: &mut Linker<T>,
    granted: &mut Vec<&'static str>,
) -> wasmtime::Result<()> {
    if !granted.contains(&"wasi:http/types") {
        link(linker, &["wasi:http/types"])?;
        granted.push("wasi:http/types");
    }
    Ok(())
}

/// The host type of a granted interface's resource (`wasi:io/poll.pollable`), for stubs of
/// interfaces that use it; `None` for those whose type wasmtime-wasi keeps private.
pub fn host_resource(name: &str) -> Option<ResourceType> {
    use wasmtime_wasi_http::p2::types as http;
    use wasmtime_wasi_io::{poll, streams};
    Some(match name {
        "wasi:io/poll.pollable" => ResourceType::host::<poll::DynPollable>(),
        "wasi:io/streams.input-stream" => ResourceType::host::<streams::DynInputStream>(),
        "wasi:io/streams.output-stream" => ResourceType::host::<streams::DynOutputStream>(),
        "wasi:io/error.error" => ResourceType::host::<streams::Error>(),
        "wasi:sockets/network.network" => ResourceType::host::<wasmtime_wasi::p2::Network>(),
        "wasi:filesystem/types.descriptor" => {
            ResourceType::host::<wasmtime_wasi::filesystem::Descriptor>()
        }
        "wasi:filesystem/types.directory-entry-stream" => {
            ResourceType::host::<wasmtime_wasi::p2::ReaddirIterator>()
        }
        // Used by `wasi:http/outgoing-handler`, a stub when only `wasi:http/types` is linked
        // (an incoming-handler without `imports: [wasi:http]`).
        "wasi:http/types.outgoing-request" => ResourceType::host::<http::HostOutgoingRequest>(),
        "wasi:http/types.request-options" => {
            ResourceType::host::<wasmtime_wasi_http::RequestOptions>()
        }
        "wasi:http/types.future-incoming-response" => {
            ResourceType::host::<http::HostFutureIncomingResponse>()
        }
        "wasi:http/types.fields" => ResourceType::host::<wasmtime_wasi_http::FieldMap>(),
        _ => return None,
    })
}

struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// Where a `wasi.env` value comes from, resolved at load; read when a call starts.
#[derive(Debug, Clone)]
pub enum EnvSource {
    /// The host environment variable of this name.
    Os(String),
    /// A fixed value (static storage), or none.
    Fixed(Option<String>),
}

/// One `wasi.env` item, resolved at load.
#[derive(Debug, Clone)]
pub struct EnvBinding {
    /// The `env.variable` entry ID, for the error message.
    pub id: String,
    /// The name the guest sees.
    pub name: String,
    pub required: bool,
    pub source: EnvSource,
    pub default: Option<String>,
}

/// One `wasi.mounts` item, resolved at load.
#[derive(Debug, Clone)]
pub struct Mount {
    pub host: PathBuf,
    pub guest: String,
    pub read_only: bool,
}

/// What one entry's guests see of WASI.
#[derive(Debug, Clone, Default)]
pub struct WasiSpec {
    pub args: Vec<String>,
    pub cwd: Option<String>,
    pub env: Vec<EnvBinding>,
    pub mounts: Vec<Mount>,
}

impl WasiSpec {
    /// The context of one call of entry `id`.
    ///
    /// # Errors
    /// `NOT_FOUND` for a required variable without a value; `INTERNAL` for a mount whose
    /// folder cannot be opened.
    pub fn builder(&self, id: &str) -> Result<WasiCtxBuilder, Error> {
        let mut b = WasiCtxBuilder::new();
        // argv[0] is the program name, as a guest's `main` expects.
        b.arg(id);
        b.args(&self.args);
        b.initial_cwd(self.cwd.as_deref().unwrap_or("/"));
        for env in &self.env {
            let value = match &env.source {
                EnvSource::Os(name) => std::env::var(name).ok(),
                EnvSource::Fixed(v) => v.clone(),
            }
            .or_else(|| env.default.clone());
            match value {
                Some(v) => {
                    b.env(&env.name, v);
                }
                None if env.required => {
                    return Err(Error::new(
                        Kind::NotFound,
                        format!("required wasi env variable not found: {}", env.id),
                    ));
                }
                None => {}
            }
        }
        for m in &self.mounts {
            let perms = if m.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            b.preopened_dir(&m.host, &m.guest, perms).map_err(|e| {
                Error::internal(format!("mount {} at {}: {e:#}", m.host.display(), m.guest))
            })?;
        }
        let prefix: Arc<str> = Arc::from(format!("[{id}] "));
        b.stdout(Prefixed(prefix.clone(), Host::Stdout));
        b.stderr(Prefixed(prefix, Host::Stderr));
        Ok(b)
    }

    /// A WASIp2 context for a component call.
    ///
    /// # Errors
    /// See [`WasiSpec::builder`].
    pub fn context(&self, id: &str) -> Result<WasiCtx, Error> {
        Ok(self.builder(id)?.build())
    }
}

/// Guest stdout or stderr: the host's same stream, each line prefixed by the entry ID.
#[derive(Clone)]
struct Prefixed(Arc<str>, Host);

/// The host stream guest output goes to.
#[derive(Clone, Copy)]
enum Host {
    Stdout,
    Stderr,
}

impl Host {
    /// Writes `bytes` at once, then flushes (the host's stdout buffers).
    fn write_all(self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Host::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
            Host::Stderr => std::io::stderr().lock().write_all(bytes),
        }
    }
}

impl IsTerminal for Prefixed {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Prefixed {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter::new(self.0.clone(), self.1))
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineWriter::new(self.0.clone(), self.1))
    }
}

/// The longest line of guest output held back waiting for its end.
const MAX_LINE: usize = 64 * 1024;

/// Writes whole lines with the prefix; a partial line waits for its end (or the drop).
struct LineWriter {
    prefix: Arc<str>,
    host: Host,
    partial: Vec<u8>,
}

impl LineWriter {
    fn new(prefix: Arc<str>, host: Host) -> Self {
        LineWriter {
            prefix,
            host,
            partial: Vec::new(),
        }
    }

    fn put(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        let mut out = Vec::new();
        while let Some(end) = bytes.iter().position(|b| *b == b'\n') {
            out.extend_from_slice(self.prefix.as_bytes());
            out.append(&mut self.partial);
            out.extend_from_slice(&bytes[..=end]);
            bytes = &bytes[end + 1..];
        }
        self.partial.extend_from_slice(bytes);
        // A guest that never ends its line is cut into lines of MAX_LINE bytes, so the
        // host keeps no more than that of it.
        while self.partial.len() >= MAX_LINE {
            out.extend_from_slice(self.prefix.as_bytes());
            out.extend(self.partial.drain(..MAX_LINE));
            out.push(b'\n');
        }
        if out.is_empty() {
            return Ok(());
        }
        // One write per batch of lines, so lines of concurrent calls do not interleave.
        self.host.write_all(&out)
    }

    fn finish(&mut self) {
        if !self.partial.is_empty() {
            let _ = self.put(b"\n");
        }
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.finish();
    }
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.put(&bytes)
            .map_err(|e| StreamError::LastOperationFailed(e.into()))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl wasmtime_wasi::p2::Pollable for LineWriter {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.put(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
