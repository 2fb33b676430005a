//! The errors calls end with: every one in context (`failed to call `id`: ...`, with the
//! entry and method in its details), and wasmtime's failures classified by their type
//! (exit, cancel, ungranted import, trap, deadline, fuel, memory), never by their text.

use wasmtime::{Store, Trap, WasmBacktrace};
use wasmtime_wasi::I32Exit;

use super::link::Ungranted;
use super::{CallCtx, Function};
use crate::error::{Error, Kind};
use crate::host::HostFailure;
use crate::limits::Canceled;
use crate::value::ConvError;

impl Function {
    pub(super) fn timeout_error(&self, timeout: Option<u64>) -> Error {
        Error::new(
            Kind::Timeout,
            format!(
                "execution time limit of {} ms exceeded",
                timeout.unwrap_or_default()
            ),
        )
    }

    /// `failed to call `id`: <message>`, with the entry and method in the details.
    pub(super) fn fail(&self, e: Error) -> Error {
        let (id, method) = (self.id.clone(), self.method.clone());
        e.context(format_args!("failed to call `{}`", self.id))
            .with(|d| {
                d.entry = Some(id);
                d.method = Some(method);
            })
    }

    /// The error for argument `index` (0-based) failing to convert.
    pub fn arg_error(&self, index: usize, e: ConvError) -> Error {
        let name = self.param_name(index);
        let path = e.path();
        self.fail(
            Error::invalid(format!("argument {} ({name}): {e}", index + 1)).with(|d| {
                d.argument = Some(index + 1);
                d.path = (!path.is_empty()).then_some(path);
            }),
        )
    }

    pub(super) fn result_error(&self, e: ConvError) -> Error {
        self.fail(Error::internal(format!("result: {e}")))
    }

    /// Classifies a wasmtime failure by its type, never by its text.
    pub(super) fn trap(&self, e: wasmtime::Error, store: &Store<CallCtx>) -> Error {
        let backtrace = e.downcast_ref::<WasmBacktrace>().map(|bt| bt.to_string());
        let limits = &self.limits;
        if let Some(exit) = e.downcast_ref::<I32Exit>() {
            let code = exit.0;
            return self.fail(
                Error::internal(format!("guest exited with code {code}"))
                    .with(|d| d.exit_code = Some(code)),
            );
        }
        if e.downcast_ref::<Canceled>().is_some() {
            return self.fail(Error::new(Kind::Canceled, "call canceled"));
        }
        if let Some(failed) = e.downcast_ref::<HostFailure>() {
            let name = failed.name.clone();
            return self.fail(Error::internal(failed.to_string()).with(|d| {
                d.host = Some(name);
                d.backtrace = backtrace;
            }));
        }
        if let Some(full) = e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
            // Instances elsewhere in the process hold every slot of a kind: it passes when
            // some end (retryable), and FUNCS_ALLOCATOR=on-demand has no such limit.
            return self.fail(Error::new(
                Kind::Unavailable,
                format!("{full} (the pooling allocator's slots are all in use; retry when instances close)"),
            ));
        }
        if let Some(denied) = e.downcast_ref::<Ungranted>() {
            return self.fail(Error::new(Kind::PermissionDenied, denied.to_string()));
        }
        let trap = e.downcast_ref::<Trap>();
        let error = match trap {
            Some(Trap::Interrupt) => self.timeout_error(store.data().timeout),
            Some(Trap::OutOfFuel) => Error::internal(format!(
                "fuel limit of {} exhausted",
                limits.max_fuel.unwrap_or_default()
            )),
            Some(trap) if store.data().limiter.refused => Error::internal(format!(
                "{trap} (after memory growth beyond the limit of {} bytes was refused)",
                limits.max_memory_bytes.unwrap_or_default()
            )),
            Some(trap) => Error::internal(trap.to_string()),
            None => Error::internal(e.root_cause().to_string()),
        };
        let code = trap.map(|trap| snake_case(&format!("{trap:?}")));
        self.fail(error.with(|d| {
            d.trap = code;
            d.backtrace = backtrace;
        }))
    }
}

/// `UnreachableCodeReached` to `unreachable_code_reached`.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
