//! The whole-request call of a `wasi:http/incoming-handler` component: the request goes in
//! as wasi:http resources and the response comes out as soon as the guest sets it, its body
//! streaming while the guest writes it.

use std::sync::atomic::Ordering;

use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::{CallOptions, Function, Target};
use crate::error::Error;
use crate::value::Value;

/// The body of a request served to an incoming-handler (bounded by the HTTP server).
pub type IncomingBody = http_body_util::combinators::UnsyncBoxBody<
    bytes::Bytes,
    wasmtime_wasi_http::p2::bindings::http::types::ErrorCode,
>;

impl Function {
    /// Runs the incoming-handler on `request`; its response goes to `respond` as soon as
    /// the guest sets it (the body streams while the guest writes it).
    ///
    /// # Errors
    /// As [`Function::run`]; the request is answered by the caller then.
    pub async fn handle_http(
        &self,
        request: hyper::Request<IncomingBody>,
        respond: tokio::sync::oneshot::Sender<
            Result<hyper::Response<HyperOutgoingBody>, ErrorCode>,
        >,
        options: &CallOptions,
    ) -> Result<Value, Error> {
        let Target::Component {
            handler: Some(handler),
            ..
        } = &self.target
        else {
            unreachable!("checked by is_handler")
        };
        let timeout = options.timeout(&self.limits);
        let control = options.control.as_ref();
        let mut store = self.store(timeout, control, options.yields)?;
        let call = async {
            self.instances.fetch_add(1, Ordering::Relaxed);
            let proxy = handler
                .instantiate_async(&mut store)
                .await
                .map_err(|e| self.trap(e, &store))?;
            let http = |e: wasmtime::Error| self.fail(Error::internal(format!("{e:#}")));
            let req = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, request)
                .map_err(http)?;
            let out = store
                .data_mut()
                .http()
                .new_response_outparam(respond)
                .map_err(http)?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
                .map_err(|e| self.trap(e, &store))?;
            Ok(Value::Nil)
        };
        self.bounded(call, timeout, control, Err).await
    }
}
