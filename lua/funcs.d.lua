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
---@field _VERSION string The module version.
local funcs = {}

---@class funcs.Summary
---@field entries string[] IDs (`ns:name`) loaded, sorted.
---@field skipped {id: string, kind: string}[] Entries of kinds this module does not run.

---Loads every `*.yaml`/`*.yml` under `path` (a folder, recursively, or one file).
---The load is atomic: on any error nothing is applied. Loading the same path again replaces
---what it loaded before.
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
---
---No result gives `nil`; several results give one array.
---@param id string
---@param ... any
---@return any value
---@return funcs.Error? err
function funcs.call(id, ...) end

---@class funcs.Errors
---@field INVALID "INVALID" Bad input or configuration.
---@field NOT_FOUND "NOT_FOUND" Unknown entry, missing file, fs entry or env variable.
---@field INTERNAL "INTERNAL" A trap, or anything else that went wrong inside.
---@field TIMEOUT "TIMEOUT" The call ran past its deadline.
---@field CANCELED "CANCELED" The call was cancelled.
---@field UNAVAILABLE "UNAVAILABLE" The pool was closed by a reload or shutdown.
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

return funcs
