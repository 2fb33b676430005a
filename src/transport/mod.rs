//! How functions are reached from outside Lua: an HTTP server ([`http`], with its routes in
//! `route`) that runs requests through the functions' pools, in one of two forms: the
//! request body as the argument and the result as the response ([`payload`]), or the whole
//! request handed to a `wasi:http/incoming-handler` component (`Function::handle_http`).
//!
//! A new transport lives here, next to these: it takes a lookup from IDs to pools and
//! submits calls or tasks to them; it never reads the registry itself.

pub mod http;
pub mod payload;
mod route;
