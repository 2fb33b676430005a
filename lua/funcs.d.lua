---@meta funcs

---Run WebAssembly functions declared in a YAML registry.
---
---```lua
---local funcs = require("funcs")
---assert(funcs.load("examples/app"))
---print(funcs.call("examples:compute", 6, 7)) --> 42
---```
---@class funcs
---@field errors funcs.Errors Error kind constants.
---@field http funcs.Http HTTP services.
---@field _VERSION string The module version.
local funcs = {}

---@class funcs.Summary
---@field entries string[] IDs (`ns:name`) loaded, sorted.
---@field skipped {id: string, kind: string}[] Entries of kinds this module does not run.
---@field bound table<string, string> Per function ID, the export its `method` bound (`test:dep/test@0.2.0#z`): a method naming an interface without a version binds the highest version that has the function.

---Loads every `*.yaml`/`*.yml` under `path` (a folder, recursively, or one file).
---The load is atomic: on any error nothing is applied (no entry, pool or service changes; a
---service that starts with the load and cannot bind fails it). Loading the same path again
---replaces what it loaded before.
---@param path string
---@return funcs.Summary? summary
---@return funcs.Error? err
function funcs.load(path) end

---Calls function `id` (`ns:name`) with one Lua value per WIT parameter.
---
---Values (WIT: Lua in / Lua out):
--- - `bool`: boolean
--- - `s8`..`u64`: integer (integral floats accepted; range-checked)
--- - `f32`, `f64`: number
--- - `char`: one-character string or code point / one-character string
--- - `string`: UTF-8 string
--- - `list<u8>`: string of bytes (or array of integers) / string
--- - `list<T>`, `tuple`: array table (`{}` is empty)
--- - `record`: table by field name (snake_case accepted) / table by WIT name (`["tag-count"]`)
--- - `option<T>`: `nil` or the value
--- - `result`: `{ok = v}` or `{err = e}` (no payload: `true`)
--- - `variant`: `{case = payload}` (or the case name) / `{case = payload}`
--- - `enum`: case name or 0-based index / case name
--- - `flags`: `{read = true}`, `{"read"}` or a bitmask / set table
--- - `own`/`borrow` of a resource Lua defines (`funcs.host`): any Lua value / the same value
---
---No result gives `nil`; several results give one array.
---@param id string
---@param ... any
---@return any value
---@return funcs.Error? err
function funcs.call(id, ...) end

---Starts a call of `id` on its entry's pool and returns at once (an `inline` entry runs the
---call first: its future is already complete). The arguments are converted now; a bad one
---gives `nil, err` here. A full `static` queue blocks until there is room.
---@param id string
---@param ... any
---@return funcs.Future? future
---@return funcs.Error? err
function funcs.async(id, ...) end

---A new Executor: `call` and `async` with options of its own.
---@return funcs.Executor
function funcs.new() end

---@class funcs.Stats
---@field pool "inline"|"lazy"|"static"|"adaptive"
---@field calls integer Calls finished.
---@field failures integer Calls finished with an error.
---@field in_flight integer Calls running now (sleeping WASI guests included).
---@field queued integer Calls waiting for a worker.
---@field workers integer Worker threads now.
---@field instances integer Instances created (fewer than calls with `pool.reuse`).
---@field warm_instances integer Instances kept for more calls (`pool.reuse`): at most the pool's size, dropped after its idle time.
---@field host_calls integer Calls from the guest into host functions.
---@field http_requests integer Outgoing HTTP requests the guest made (`imports: [wasi:http]`), refused ones included.
---@field http_denied integer Outgoing requests the entry's `http_client` policy refused.
---@field http_sent_bytes integer Request body bytes of outgoing requests.
---@field http_received_bytes integer Response body bytes of outgoing requests.
---@field direct boolean Whether `funcs.call` takes the direct path: Lua values written straight into guest memory (components without WASI whose types it knows; see the README).
---@field open_instances integer Instances callers hold (`funcs.instantiate`).
---@field live_handles integer Resource handles alive in those instances.

---Counters of function `id`, or of every function by ID.
---@param id string?
---@return funcs.Stats|table<string, funcs.Stats>? stats
---@return funcs.Error? err
function funcs.stats(id) end

---@class funcs.Description
---@field id string The entry ID.
---@field export string The export the method bound (`ns:pkg/iface@1.0.0#func`, or the function's name).
---@field signature string? The WIT signature with the definitions of the named types it uses.
---@field signature_error string? Why there is no signature (the component's file changed since the load).
---@field pool {type: string, size: integer, buffer: integer?, warm_start: boolean}
---@field limits {max_execution_ms: integer?, max_memory_bytes: integer?, max_fuel: integer?}
---@field imports string[] The WASI interfaces and host interfaces the entry grants.
---@field http_client {allowed_hosts: string[], allow_private_ip: boolean, timeout_ms: integer, max_response_bytes: integer, max_request_bytes: integer}? The outgoing-request policy, with its defaults, when `imports` grants `wasi:http`.
---@field http boolean `transport: wasi-http`.
---@field direct boolean Whether `funcs.call` takes the direct path.
---@field resources {name: string, interface: string?, wit: string}[]? The resources the component exports, as WIT (constructor, methods, statics).

---What it takes to call function `id`: its WIT signature (for a component, decoded from its
---bytes, read again from the file; for a core module, from its `wit` or its core types), its
---pool, limits and granted imports.
---@param id string
---@return funcs.Description? description
---@return funcs.Error? err
function funcs.describe(id) end

---Every function's counters in the Prometheus text format (0.0.4), labelled by function ID:
---`funcs_calls_total`, `funcs_failures_total{kind}`, `funcs_timeouts_total`,
---`funcs_traps_total{code}`, `funcs_in_flight`, `funcs_queued`, `funcs_workers`, `funcs_warm_instances`,
---`funcs_instances_total`, `funcs_host_calls_total`, `funcs_http_*_total` and the histogram `funcs_call_duration_seconds`. Counters start
---again when a reload replaces an entry's pool. An `http.service` with `metrics: /metrics`
---serves the same text.
---@return string text
function funcs.metrics() end

---Registers Lua functions for an interface guests import, for the loads after: a WIT
---interface (`ns:pkg/iface`, with or without `@version`), a plain-named interface, `"$root"`
---for functions a world imports at top level, or a core module's import module (`"env"`).
---Keys are WIT names or their snake_case. An entry links it only when its `imports` names it.
---A table under a resource's name defines that resource: `new` (constructor), methods
---(`self`: the Lua value the constructor or a static returned, the same value every time),
---statics, and `__drop(self)`, run once the guest holds no own handle of the value (dropped,
---or its instance ended).
---Host functions run on the Lua thread; a Lua error or a badly shaped result fails the call
---`INTERNAL` with `err:details().host`. Misuse raises a Lua error.
---@param name string
---@param functions table<string, function|funcs.HostResource>
---@return true
function funcs.host(name, functions) end

---The functions of a resource Lua defines (`funcs.host`), by WIT or snake_case name.
---@class funcs.HostResource
---@field new (fun(...): any)? The constructor: returns the Lua value that stands for the resource.
---@field __drop (fun(self: any))? Runs once the guest holds no own handle of the value.
---@field [string] fun(...): any Methods (`self` first) and statics.

---Gives a Lua function a registry ID (`ns:name`): `funcs.call(id, ...)` calls it, and guests
---granted `funcs` (`wippy:runtime/funcs@0.1.0`) call it with `call-string`/`call-bytes`.
---An entry loaded under the same ID comes first.
---@param id string
---@param fn function
---@return true
function funcs.register(id, fn) end

---A file descriptor for event loops: readable while futures of this Lua state have completed
---since the last `funcs.poll()`, or host calls from workers wait for the Lua thread (the same
---descriptor on every call). `lua/funcs/luv.lua` and `lua/funcs/cqueues.lua` watch it for
---coroutines that await futures.
---@return integer? fd
---@return funcs.Error? err `INTERNAL` when the process cannot make a pipe.
function funcs.fd() end

---Clears `funcs.fd()`, answers the host calls waiting, and returns how many futures completed
---(with a result, an error or a cancel) since the last poll.
---@return integer completed
function funcs.poll() end

---Stops every pool: queued calls fail with `UNAVAILABLE`, running guests are interrupted,
---worker threads are joined. Loads and calls afterwards give `UNAVAILABLE`. Closing the Lua
---state does the same.
function funcs.shutdown() end

---@class funcs.EngineInfo
---@field allocator "pooling"|"on-demand" How instances get their memory.
---@field reason string? Why the pooling allocator is not in use (nil when forced by `FUNCS_ALLOCATOR=on-demand`).
---@field wasmtime string The wasmtime version.
---@field pools integer Pools alive in the process: serving, and reloaded ones until their last call ended.
---@field core_instances integer? Core instances holding slots of the pooling allocator (nil on-demand).
---@field component_instances integer? Component instances holding slots of the pooling allocator (nil on-demand).

---@return funcs.EngineInfo
function funcs.engine() end

---Seconds on a monotonic clock, for timing calls.
---@return number
function funcs.clock() end

---A call started with `async`.
---@class funcs.Future
local Future = {}

---@return boolean
function Future:is_complete() end

---True when `cancel` ended the call.
---@return boolean
function Future:is_canceled() end

---`value, nil` when done; `nil, nil` while running; `nil, err` on failure. The value is
---converted to Lua on each call.
---@return any value
---@return funcs.Error? err
function Future:result() end

---Blocks until the call is done, at most `timeout_ms` (then a `TIMEOUT` err; the call goes on).
---`math.huge` (or any wait too long for a clock) means no limit; NaN or a negative number raises.
---@param timeout_ms number?
---@return any value
---@return funcs.Error? err
function Future:wait(timeout_ms) end

---Completes the future with `CANCELED` now; a running guest is interrupted, a queued call
---never starts.
---@return true
function Future:cancel() end

---@class funcs.InstanceOptions
---@field timeout integer? Deadline in ms for each call of the instance, replacing the entry's `max_execution_ms`.

---A live instance of an entry, kept across calls (SPEC section 15).
---@param id string
---@param options funcs.InstanceOptions?
---@return funcs.Instance? instance
---@return funcs.Error? err
function funcs.instantiate(id, options) end

---An instance the caller holds: its state lives across calls; one call at a time.
---@class funcs.Instance
local Instance = {}

---Calls an export (`iface#func`, `func`, or a name one exported interface alone has).
---Handles in the arguments are lent (`borrow`) or moved (`own`); handles in the results are new.
---@param export string
---@param ... any
---@return any value
---@return funcs.Error? err
function Instance:call(export, ...) end

---Like `Instance:call`, queued on the entry's pool after the instance's earlier `async` calls
---(one at a time, in order); the instance's other work waits behind them. On an `inline` pool
---the call runs now and the future is complete.
---@param export string
---@param ... any
---@return funcs.Future? future
---@return funcs.Error? err
function Instance:async(export, ...) end

---The class of an exported resource (`name`, or `iface#name` when several interfaces have one):
---`new` (the constructor) and the statics, by WIT and snake_case names.
---@param name string
---@return table<string, fun(...): any, funcs.Error?>? class
---@return funcs.Error? err
function Instance:resource(name) end

---Ends the instance (no guest destructors run): every handle of it is dead. Twice does nothing.
---@return true? ok
---@return funcs.Error? err
function Instance:close() end

---A resource handle: its methods by WIT or snake_case name (`h:get()`, `h:arm_trap()`), `self` lent.
---@class funcs.Handle
local Handle = {}

---Runs the guest's destructor now; a dead handle (dropped, moved, its instance ended) does nothing.
---@return true? ok
---@return funcs.Error? err
function Handle:drop() end

---@class funcs.ExecutorOptions
---@field timeout integer? Deadline in ms for each call, replacing the entry's `max_execution_ms`; a positive integer (deadlines above 2^40 ms, about 34 years, are cut to that).

---Calls with options of their own.
---@class funcs.Executor
local Executor = {}

---Like `funcs.call`.
---@param id string
---@param ... any
---@return any value
---@return funcs.Error? err
function Executor:call(id, ...) end

---Like `funcs.async`.
---@param id string
---@param ... any
---@return funcs.Future? future
---@return funcs.Error? err
function Executor:async(id, ...) end

---A new Executor with these options on top of this one's.
---@param options funcs.ExecutorOptions
---@return funcs.Executor
function Executor:with_options(options) end

---HTTP services declared in the registry (`http.service`, `http.router`, `http.endpoint`).
---@class funcs.Http
local Http = {}

---Starts the service `id`; its bound address (`"127.0.0.1:40123"`).
---@param id string
---@return string? addr
---@return funcs.Error? err
function Http.start(id) end

---Stops the service `id`: no new connections; requests in flight finish first.
---@param id string
---@return true? ok
---@return funcs.Error? err
function Http.stop(id) end

---The address of the service `id` while it runs.
---@param id string
---@return string?
function Http.addr(id) end

---Starts the service `id` if needed and blocks the script while it serves.
---@param id string
---@return nil
---@return funcs.Error? err
function Http.serve(id) end

---@class funcs.Errors
---@field INVALID "INVALID" Bad input or configuration.
---@field NOT_FOUND "NOT_FOUND" Unknown entry, missing file, fs entry or env variable (also a required WASI variable without value).
---@field INTERNAL "INTERNAL" A trap, or anything else that went wrong inside.
---@field TIMEOUT "TIMEOUT" The call ran past its deadline.
---@field CANCELED "CANCELED" The call was cancelled.
---@field UNAVAILABLE "UNAVAILABLE" The pool was closed by shutdown, or a worker, runtime or service could not be made (out of threads or file descriptors).
---@field PERMISSION_DENIED "PERMISSION_DENIED" The guest asked for what its entry does not grant.

---@alias funcs.ErrorKind "INVALID"|"NOT_FOUND"|"INTERNAL"|"TIMEOUT"|"CANCELED"|"UNAVAILABLE"|"PERMISSION_DENIED"

---@class funcs.ErrorDetails
---@field kind funcs.ErrorKind
---@field entry string? The entry ID.
---@field file string? The registry file being loaded.
---@field field string? The field path inside the entry (`pool.size`).
---@field method string? The method being called.
---@field argument integer? The 1-based argument of a conversion error.
---@field path string? The path inside that argument (`[2].tags[1]`).
---@field trap string? The trap code (`unreachable_code_reached`, `memory_out_of_bounds`, ...).
---@field backtrace string? The guest backtrace, when one was captured.
---@field exit_code integer? The status a guest passed to `wasi:cli/exit` or `proc_exit`.
---@field host string? The host function (`iface#func`) whose Lua error or result failed the call.

---A failure of loading or calling. `tostring(err)` gives the message.
---@class funcs.Error
local Error = {}

---@return funcs.ErrorKind
function Error:kind() end

---@return string
function Error:message() end

---True when the same call may succeed if made again (`TIMEOUT`, `UNAVAILABLE`).
---@return boolean
function Error:retryable() end

---@return funcs.ErrorDetails
function Error:details() end

---`require("funcs.luv")`: awaiting futures on a luv loop (`lua/funcs/luv.lua`).
---@class funcs.luv
---Inside a coroutine, yields until `future` completes while the loop runs; outside one, `future:wait()`.
---@field await fun(future: funcs.Future): any, funcs.Error?
---@field all fun(futures: funcs.Future[]): any[], (funcs.Error?)[]

---`require("funcs.cqueues")`: awaiting futures in a cqueues controller (`lua/funcs/cqueues.lua`).
---@class funcs.cqueues
---Inside a controller's coroutine, waits until `future` completes while the controller runs its other coroutines; outside one, `future:wait()`.
---@field await fun(future: funcs.Future): any, funcs.Error?
---@field all fun(futures: funcs.Future[]): any[], (funcs.Error?)[]

return funcs
