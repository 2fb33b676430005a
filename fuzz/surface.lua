-- A fuzz program over the whole Lua-facing surface of funcs (SPEC section 13): a seeded PRNG
-- drives random operations (calls, async futures and their methods, executors and their
-- options, loads and reloads, stats, error objects, HTTP services, coroutines, shutdown) with
-- arguments of every Lua type against the fixture registries under spec/fixtures and the
-- examples registry. Every operation runs under pcall; what must hold:
--   - the process never crashes, aborts or hangs (checked by scripts/fuzz.sh from outside);
--   - nothing panics (stderr without "panicked" / "RUST_BACKTRACE", checked from outside);
--   - every failure is clean: a raised Lua error string, or a funcs error object whose kind is
--     one of funcs.errors and whose message says what went wrong. Counted as unclean: INTERNAL
--     from an entry that cannot trap (so from a bad argument), messages that mention a panic,
--     unwrap, overflow and the like, non-string raised errors, a metamethod or Lua function
--     of an argument being run (tables are read raw), and broken invariants of the objects.
--
-- Run from the repository root:
--   FUZZ_SEED=1234 FUZZ_EXECS=20000 LUA_CPATH="/tmp/fuzz-so/?.so;;" lua5.4 fuzz/surface.lua
-- Environment:
--   FUZZ_SEED      PRNG seed (integer; default: from the clock). Printed first.
--   FUZZ_EXECS     operations to run (default 20000).
--   FUZZ_STATE     a file that holds the operation being run (rewritten before each one), so
--                  a crash or hang is attributable; "exit" while the Lua state closes.
--   FUZZ_FINDINGS  a file to append unclean errors and broken invariants to (one per line).
--   FUZZ_SHUTDOWN  "0" never calls funcs.shutdown(); default: half of the seeds call it once
--                  in their last 3 % of operations (every operation after it gets UNAVAILABLE).
--   FUZZ_KNOWN     "1" also triggers the known defects that hang or exhaust the process.
-- Output (stdout): "seed N", then "@@ key<TAB>value" lines that scripts/fuzz.sh adds up, and
-- one line "fuzz: N executions in S s (R/s), U unclean" at the end.
-- Portable: Lua 5.1 to 5.4 and LuaJIT (no 5.2+ syntax, no 5.3+ library calls unguarded; the
-- string escapes are decimal). Where Lua has no integers (5.1, 5.2, LuaJIT) the integer
-- values are integral doubles: the 64-bit edges become the nearest doubles (still big), random
-- integers stay in the range a double holds exactly, and "is an integer" means "is integral".
-- funcs.await lives in lua/ (the script runs from the repository root).
package.path = "lua/?.lua;" .. package.path
local funcs = require("funcs")
local unpack = table.unpack or unpack

-- ---------------------------------------------------------------------------------------
-- Portability.

-- Lua 5.3+: integers and floats are distinct subtypes.
local HAS_INTEGERS = math.type ~= nil
-- An integral number in the 64-bit range as an integer (5.3+), or as itself (before 5.3).
local tointeger = math.tointeger or function(x)
  if type(x) == "number" and x == math.floor(x) and x >= -2 ^ 63 and x < 2 ^ 63 then return x end
  return nil
end
-- math.type, or (before 5.3) "integer" for an integral finite number, "float" for another.
local number_type = math.type or function(x)
  if type(x) ~= "number" then return nil end
  if x == math.floor(x) and x > -math.huge and x < math.huge then return "integer" end
  return "float"
end
-- The 64-bit edges: before 5.3 the nearest doubles (2^63 - 1 rounds to 2^63; 2^63 - 1024 is
-- the next double below).
local MAXINT = math.maxinteger or 2 ^ 63
local MININT = math.mininteger or -2 ^ 63
local MAXINT_1 = HAS_INTEGERS and math.maxinteger - 1 or 2 ^ 63 - 1024
local MININT_1 = HAS_INTEGERS and math.mininteger + 1 or -2 ^ 63 + 1024

local SEED = tointeger(tonumber(os.getenv("FUZZ_SEED") or "")) or
  (os.time() * 1000 + math.floor((os.clock() * 1e6) % 1000))
local EXECS = tointeger(tonumber(os.getenv("FUZZ_EXECS") or "")) or 20000
local STATE = os.getenv("FUZZ_STATE")
local FINDINGS = os.getenv("FUZZ_FINDINGS")
-- FUZZ_KNOWN=1: also run the operations that trigger known defects that hang or exhaust the
-- process (they stop a child; see the comments at their places).
local KNOWN_DEFECTS = os.getenv("FUZZ_KNOWN") == "1"
-- LuaJIT's generator, seeded with nearby numbers (scripts/fuzz.sh gives its children seed + k),
-- starts correlated (the first draws of 10 consecutive seeds agree): its seed is first spread
-- by three steps of a Lehmer generator (exact in doubles). FUZZ_SEED still replays.
local function spread_seed(s)
  local p = 2147483647
  local x = (s % p + math.floor(s / p)) % p
  if x == 0 then x = 1 end
  for _ = 1, 3 do x = (x * 48271) % p end
  return x
end
math.randomseed(jit and spread_seed(SEED) or SEED)
local R = math.random
io.stdout:setvbuf("line")
print("seed " .. SEED)

local function chance(p) return R() < p end
local function pick(list) return list[R(#list)] end

-- A random integer in [lo, hi]. Lua 5.3+: math.random itself (the sequences of earlier seeds
-- replay). Before 5.3 math.random(m, n) takes C ints (5.1) or draws 31 bits (5.1, 5.2): built
-- from two draws of 26 bits (a span of at most 2^53, exact in a double; LuaJIT and 5.2 round
-- the bounds the same way).
local randint
if HAS_INTEGERS then
  randint = R
else
  randint = function(lo, hi)
    local span = hi - lo + 1
    if span <= 2 ^ 26 then return lo + math.floor(R() * span) end
    local x = math.floor(R() * 2 ^ 26) * 2 ^ 26 + math.floor(R() * 2 ^ 26) -- [0, 2^52)
    x = x * 2 + math.floor(R() * 2) -- [0, 2^53)
    return lo + x % span
  end
end

-- Lua 5.1 (not LuaJIT) cannot yield across pcall: a coroutine that awaits under pcall would
-- fail with "attempt to yield across metamethod/C-call boundary", an artifact of the harness.
-- There, ypcall runs the function in a coroutine of its own and passes its yields on.
local YIELD_ACROSS_PCALL = coroutine.wrap(function()
  pcall(coroutine.yield, "through")
  return "blocked"
end)() == "through"
local ypcall = pcall
if not YIELD_ACROSS_PCALL then
  local function pack(...) return { n = select("#", ...), ... } end
  ypcall = function(fn, ...)
    -- (a Lua function: coroutine.create refuses a callable table such as funcs.await)
    local co = coroutine.create(function(...) return fn(...) end)
    local res = pack(coroutine.resume(co, ...))
    while true do
      if not res[1] then return false, res[2] end
      if coroutine.status(co) == "dead" then return true, unpack(res, 2, res.n) end
      res = pack(coroutine.resume(co, coroutine.yield(unpack(res, 2, res.n))))
    end
  end
end

-- ---------------------------------------------------------------------------------------
-- Bookkeeping: the current operation, counters, findings.

local state_f = STATE and assert(io.open(STATE, "w"))
local PAD = string.rep(" ", 300)
local exec_no = 0
local function mark(desc)
  if not state_f then return end
  local line = ("%d %s"):format(exec_no, desc):gsub("[%c]", "?"):sub(1, 300)
  state_f:seek("set")
  state_f:write(line, PAD:sub(#line + 1), "\n")
  state_f:flush()
end

local counts = {}
local function count(key, n) counts[key] = (counts[key] or 0) + (n or 1) end
local messages = {} -- normalised message -> count (raised Lua errors and error objects)
local findings_f = FINDINGS and assert(io.open(FINDINGS, "a"))
local unclean_seen = {}
local current_desc = ""
local function finding(class, text)
  count("unclean")
  count("unclean " .. class)
  text = tostring(text)
  local key = class .. "|" .. text:gsub("0x%x+", "0x?"):gsub("%d+", "N"):sub(1, 200)
  if unclean_seen[key] then return end
  unclean_seen[key] = true
  local line = ("%s\tseed=%d\texec=%d\top=%s\t%s"):format(class, SEED, exec_no, current_desc:sub(1, 300),
    text:gsub("[\r\n\t]", " "):sub(1, 600))
  if findings_f then findings_f:write(line, "\n"); findings_f:flush() end
  io.stderr:write("FUZZ-FINDING ", line, "\n")
end

local n_messages = 0
local function note_message(key)
  if messages[key] then messages[key] = messages[key] + 1 return end
  if n_messages >= 3000 then key = "(other messages)" else n_messages = n_messages + 1 end
  messages[key] = (messages[key] or 0) + 1
end

local KINDS = {}
for k, v in pairs(funcs.errors) do KINDS[v] = k end

local function normalise(msg)
  msg = msg:match("^(.-)\nstack traceback") or msg
  msg = msg:gsub("^runtime error: ", "")
  msg = msg:gsub("`[^`]*`", "`?`"):gsub("0x%x+", "0x?"):gsub("%-?%d[%d%.e+%-]*", "N")
  return msg:sub(1, 140)
end

-- A funcs error object (a userdata whose kind() gives a string).
local function is_err(v)
  if type(v) ~= "userdata" then return false end
  local ok, k = pcall(function() return v:kind() end)
  return ok and type(k) == "string"
end

local BAD_TEXT = { "panic", "unwrap", "overflow", "rust_backtrace", "called `option", "called `result",
  "index out of bounds: the len", "assertion", "internal error", "not implemented", "not yet implemented",
  "poisoned", "already borrowed", "already mutably borrowed", "attempt to yield", "c stack overflow" }
-- Texts a trapping guest legitimately produces.
local TRAP_TEXT = { overflow = "stack overflow", ["internal error"] = "internal error: wasm trap" }

local function bad_text(msg, traps)
  local low = msg:lower()
  for _, w in ipairs(BAD_TEXT) do
    if low:find(w, 1, true) then
      local ok = traps and TRAP_TEXT[w] and low:find(TRAP_TEXT[w], 1, true)
      if not ok then return w end
    end
  end
end

local shut_down = false
local recent_errors, recent_futures, recent_execs = {}, {}, {}
local function remember(list, v, cap)
  list[#list + 1] = v
  if #list > cap then table.remove(list, 1) end
end

-- One funcs error object that came back from a call: counted by kind and checked.
-- `ctx.traps`: INTERNAL is expected (a guest that traps or exits); `ctx.load`: a load.
local function check_err(err, ctx, recheck)
  local ok, kind = pcall(err.kind, err)
  local ok2, msg = pcall(err.message, err)
  local ok3, retry = pcall(err.retryable, err)
  local ok4, details = pcall(err.details, err)
  if not (ok and ok2 and ok3 and ok4) then
    return finding("error-object-method-failed", tostring(kind) .. " " .. tostring(msg))
  end
  if not KINDS[kind] then return finding("unknown-kind", kind) end
  if not recheck then
    count("kind " .. kind)
    note_message(kind .. ": " .. normalise(msg))
    remember(recent_errors, err, 16)
  end
  if type(msg) ~= "string" or msg == "" then finding("empty-message", kind) end
  if tostring(err) ~= msg then finding("tostring-differs", msg) end
  if retry ~= (kind == "TIMEOUT" or kind == "UNAVAILABLE") then finding("retryable-wrong", kind .. " " .. tostring(retry)) end
  if type(details) ~= "table" or details.kind ~= kind then finding("details-kind-wrong", kind) end
  local w = bad_text(msg, ctx.traps)
  if w then finding("bad-text(" .. w .. ")", kind .. ": " .. msg) end
  if kind == "INTERNAL" and not ctx.traps then
    finding(ctx.load and "INTERNAL-from-load" or "INTERNAL-from-non-trapping-entry", msg)
  end
  -- (the caps of instances give UNAVAILABLE: "... instances ... are open ...")
  if kind == "UNAVAILABLE" and not shut_down and not ctx.caps and not msg:find(" are open ", 1, true) then
    finding("UNAVAILABLE-before-shutdown", msg)
  end
  if kind == "NOT_FOUND" and ctx.known and not shut_down then finding("known-entry-NOT_FOUND", msg) end
end

-- A raised error (pcall returned false).
local function check_raised(e, ctx)
  if type(e) ~= "string" then
    if is_err(e) then count("raised error object"); return check_err(e, ctx) end
    -- mlua raises its errors as userdata whose __tostring gives the message.
    local ok, text = pcall(tostring, e)
    if type(e) ~= "userdata" or not ok or type(text) ~= "string" or text:find("^userdata: ") then
      return finding("non-string-raise", type(e) .. " " .. tostring(text))
    end
    count("raised userdata")
    e = text
  else
    count("raised string")
  end
  count("raised")
  if e:find("FUZZMETA", 1, true) or e:find("FUZZFN", 1, true) then
    return finding("argument-code-run", e:match("FUZZ%u+[^\n]*"))
  end
  -- An error raised by this program's own code (its first line names a line of it).
  if e:match("^[^\n]*surface%.lua:%d+:") then return finding("harness", e:match("^[^\n]*")) end
  note_message("raised: " .. normalise(e))
  local w = bad_text(e, false)
  if w then finding("bad-text(" .. w .. ")", e:match("^[^\n]*")) end
  if #e < 8 then finding("terse-raise", e) end
end

-- The results of one pcall: `ok, ...`.
-- Whether `v` is one of the call's arguments (`ctx.args`, `ctx.n`), handed back: an ID that
-- funcs.register gave the fuzzer's echo function returns an error object it was given.
local function echoed(ctx, v)
  for i = 1, ctx.n or 0 do
    if rawequal(ctx.args[i], v) then return true end
  end
  return false
end

local function check(ctx, ok, ...)
  if not ok then
    check_raised((...), ctx)
    return false
  end
  local n = select("#", ...)
  local found = false
  for i = 1, math.min(n, 3) do
    local v = select(i, ...)
    if is_err(v) and not echoed(ctx, v) then check_err(v, ctx); found = true end
  end
  if not found then count("ok") end
  return true, ...
end

-- ---------------------------------------------------------------------------------------
-- Registries and targets.

local REGISTRIES = {
  "spec/fixtures/echo", "spec/fixtures/direct", "spec/fixtures/sandbox", "spec/fixtures/pools",
  "spec/fixtures/hardening", "spec/fixtures/good", "spec/fixtures/http", "examples/app",
}
for _, path in ipairs(REGISTRIES) do assert(funcs.load(path)) end

local COLOR = { "enum", { "red", "green", "blue" } }
local PERMS = { "flags", { "read", "write", "execute" } }
local POINT = { "record", { { "x", "s32" }, { "y", "s32" } } }
local SHAPE = { "variant", { { "circle", "u32" }, { "square", "u32" }, { "at", POINT }, { "none" } } }
local USER = { "record", {
  { "id", "u64" }, { "name", "string" }, { "tags", { "list", "string" } }, { "nick", { "option", "string" } },
  { "color", COLOR }, { "perms", PERMS }, { "home", { "option", POINT } }, { "shapes", { "list", SHAPE } },
  { "score", { "result", "f64", "string" } }, { "raw", "bytes" }, { "pair", { "tuple", "s8", "u16" } },
  { "initial", "char" } } }
local MUSER = { "record", { { "id", "u32" }, { "name", "string" }, { "tags", { "list", "string" } }, { "active", "bool" } } }
local RECT = { "record", { { "top_left", POINT }, { "bottom_right", POINT } } }

-- id, parameter types, and how it may behave:
--   traps: INTERNAL is an expected outcome (traps, exits, fuel, memory limits, lying results);
--   spin = "limited": may run until its entry's deadline (called directly, or through an
--     executor whose timeout is short); spin = "unlimited": runs as long as asked (only through
--     an executor with a timeout of at most 50 ms);
--   w: weight when picking.
local TARGETS = {
  -- The direct path (components without WASI).
  { id = "echo:bool", p = { "bool" } }, { id = "echo:s8", p = { "s8" } }, { id = "echo:u8", p = { "u8" } },
  { id = "echo:s16", p = { "s16" } }, { id = "echo:u16", p = { "u16" } }, { id = "echo:s32", p = { "s32" } },
  { id = "echo:u32", p = { "u32" } }, { id = "echo:s64", p = { "s64" } }, { id = "echo:u64", p = { "u64" } },
  { id = "echo:f32", p = { "f32" } }, { id = "echo:f64", p = { "f64" } }, { id = "echo:char", p = { "char" } },
  { id = "echo:color", p = { COLOR } }, { id = "echo:permissions", p = { PERMS } },
  { id = "echo:option_u32", p = { { "option", "u32" } } }, { id = "echo:string", p = { "string" }, w = 3 },
  { id = "echo:bytes", p = { "bytes" }, w = 2 }, { id = "echo:list_u32", p = { { "list", "u32" } }, w = 3 },
  { id = "echo:list_string", p = { { "list", "string" } }, w = 2 },
  { id = "echo:list_f64", p = { { "list", "f64" } } }, { id = "echo:shapes", p = { { "list", SHAPE } }, w = 3 },
  { id = "echo:users", p = { { "list", USER } }, w = 4 }, { id = "echo:sink", p = { "u32" } },
  { id = "echo:pair", p = { "s32", "s32" } },
  { id = "direct:boom", p = { "string" }, traps = true },
  { id = "direct:len", p = { "string" }, traps = true, w = 2 },
  { id = "direct:spin", p = { { "list", "u32" } }, spin = "limited", w = 0.02 },
  { id = "direct:bad-variant", p = {}, traps = true, w = 0.2 }, { id = "direct:bad-option", p = {}, traps = true, w = 0.2 },
  { id = "direct:bad-result", p = {}, traps = true, w = 0.2 }, { id = "direct:bad-utf8", p = {}, traps = true, w = 0.2 },
  { id = "direct:string-outside", p = {}, traps = true, w = 0.2 },
  { id = "direct:bad-variant-in-list", p = {}, traps = true, w = 0.2 },
  { id = "direct:misaligned", p = {}, traps = true, w = 0.2 }, { id = "direct:pointer-outside", p = {}, traps = true, w = 0.2 },
  { id = "direct:bad-enum", p = {}, traps = true, w = 0.2 }, { id = "direct:bad-char", p = {}, traps = true, w = 0.2 },
  -- Components (general path for top-level variants and results) and core modules.
  { id = "spec:compute", p = { "u32", "u32" } }, { id = "spec:compute_using_host", p = { "u32", "u32" }, traps = true, w = 0.3 },
  { id = "spec:transform_users", p = { { "list", MUSER } }, w = 2 }, { id = "spec:filter_active", p = { { "list", MUSER } } },
  { id = "spec:aggregate_tags", p = { { "list", MUSER } } }, { id = "spec:echo", p = { "string" } },
  { id = "spec:try_divide", p = { "s32", "s32" }, traps = true }, { id = "spec:sum_list", p = { { "list", "s32" } } }, -- (traps on i32::MIN / -1: the guest panics)
  { id = "spec:swap_pair", p = { "s32", "s32" } }, { id = "spec:echo_color", p = { COLOR } },
  { id = "spec:echo_shape", p = { SHAPE } }, { id = "spec:echo_permissions", p = { PERMS } },
  { id = "spec:maybe_point", p = { "bool" } }, { id = "spec:echo_rectangle", p = { RECT } },
  { id = "spec:answer_raw", p = {} }, { id = "spec:answer", p = {} }, { id = "spec:boom", p = { "s32" }, traps = true, w = 0.3 },
  { id = "spec:divmod", p = { "u32", "u32" }, traps = true }, { id = "spec:nothing", p = {} },
  { id = "spec:count", p = { "u32" }, traps = true }, { id = "spec:spin", p = {}, spin = "limited", w = 0.02 },
  { id = "examples:answer", p = {} }, { id = "examples:answer_file", p = {} }, { id = "examples:answer_raw", p = {} },
  { id = "examples:compute", p = { "u32", "u32" } }, { id = "examples:transform_users", p = { { "list", MUSER } } },
  { id = "examples:greet", p = { "string" } },
  -- WASI entries (always on workers, general conversion).
  { id = "sb:sleep_limited", p = { "u32" }, spin = "limited", w = 0.05 },
  { id = "sb:sleep", p = { "u32" }, spin = "unlimited", w = 0.5 },
  { id = "sb:sleep_unlinked", p = { "u32" }, w = 0.3 },
  { id = "sb:p1", p = { "s32" }, traps = true, w = 0.5 }, { id = "sb:p1_env", p = {}, w = 0.5 },
  { id = "sb:p1_unlinked", p = { "s32" }, w = 0.3 },
  { id = "hard:grow_table", p = { "s32" }, w = 0.5 },
  -- Limits and pools of every kind.
  { id = "sb:spin", p = {}, spin = "limited", w = 0.02 }, { id = "sb:add", p = { "s32", "s32" } },
  { id = "sb:bomb", p = {}, traps = true, w = 0.2 }, { id = "sb:recurse", p = {}, traps = true, w = 0.2 },
  { id = "pools:inline_add", p = { "s32", "s32" } }, { id = "pools:lazy_add", p = { "s32", "s32" } },
  { id = "pools:static_add", p = { "s32", "s32" } }, { id = "pools:adaptive_add", p = { "s32", "s32" } },
  { id = "pools:default_add", p = { "s32", "s32" } }, { id = "pools:sized_add", p = { "s32", "s32" } },
  { id = "pools:check", p = { "s32" }, traps = true }, { id = "pools:counter", p = {} },
  { id = "pools:counter_reused", p = {} },
  { id = "pools:inline_spin", p = { "s64" }, spin = "unlimited", w = 0.3 },
  { id = "pools:lazy_spin", p = { "s64" }, spin = "unlimited", w = 0.3 },
  { id = "pools:static_spin", p = { "s64" }, spin = "unlimited", w = 0.3 },
  { id = "pools:adaptive_spin", p = { "s64" }, spin = "unlimited", w = 0.3 },
  { id = "pools:queue_spin", p = { "s64" }, spin = "unlimited", w = 0.3 },
  { id = "hard:spin_reused", p = { "s64" }, spin = "unlimited", w = 0.3 },
  -- HTTP-transport functions, called from Lua.
  { id = "web:greet", p = { "string" } }, { id = "web:pair", p = {} }, { id = "web:nothing", p = {} },
  { id = "web:boom", p = {}, traps = true, w = 0.3 }, { id = "web:slow", p = {}, spin = "limited", w = 0.02 },
  { id = "web:spin", p = {}, spin = "unlimited", w = 0.1 }, { id = "web:forever", p = {}, spin = "unlimited", w = 0.1 },
  { id = "web:spin_forever_static", p = {}, spin = "unlimited", w = 0.1 },
}
local KNOWN = {}
for _, t in ipairs(TARGETS) do KNOWN[t.id] = t end

-- Picks a target that `mode` may run: "plain" (no executor deadline: entry limits apply),
-- "short" (an executor timeout of at most 50 ms), "long" (an executor whose timeout may be
-- huge: it replaces the entry's limit, so nothing that spins).
local pools_by_mode = {}
for _, mode in ipairs({ "plain", "short", "long" }) do
  local list, total = {}, 0
  for _, t in ipairs(TARGETS) do
    local allowed = (mode == "short") or (mode == "plain" and t.spin ~= "unlimited") or (mode == "long" and not t.spin)
    if allowed then
      total = total + (t.w or 1)
      list[#list + 1] = { t, total }
    end
  end
  pools_by_mode[mode] = { list = list, total = total }
end
local function pick_target(mode)
  local pool = pools_by_mode[mode]
  local x = R() * pool.total
  for _, e in ipairs(pool.list) do
    if x <= e[2] then return e[1] end
  end
  return pool.list[#pool.list][1]
end

-- ---------------------------------------------------------------------------------------
-- Values of every Lua type.

local meta_hits = 0
local function meta(name, action)
  return function(...)
    meta_hits = meta_hits + 1
    if action == "raise" then error("FUZZMETA " .. name .. " raised") end
    if action == "yield" then coroutine.yield("FUZZMETA " .. name) ; error("FUZZMETA " .. name .. " resumed") end
    if name == "__len" then return 2 ^ 40 end
    if name == "__index" then return 1 end
    if name == "__pairs" then return next, {}, nil end
    return nil
  end
end
local METATABLES = {}
for _, name in ipairs({ "__index", "__len", "__pairs", "__newindex", "__eq", "__lt", "__le", "__concat", "__call",
  "__tostring", "__name", "__close", "__unm", "__add" }) do
  for _, action in ipairs({ "raise", "yield", "value" }) do
    local mt = { [name] = meta(name, action) }
    if name == "__name" then mt[name] = "FUZZMETA-name" end
    METATABLES[#METATABLES + 1] = { mt, name .. ":" .. action }
  end
end
METATABLES[#METATABLES + 1] = { { __metatable = "locked", __index = meta("__index", "raise") }, "__metatable" }
METATABLES[#METATABLES + 1] = { { __mode = "kv" }, "__mode" }

-- Finalizers that call back into funcs (at whatever point the collector runs them, which may
-- be inside a funcs call that allocates).
local gc_calls = 0
local live -- the futures (below)
-- On PUC Lua 5.1 a call from a finalizer that interrupts another call of funcs is refused
-- (a Lua error, see src/lua/guard.rs); it crashed the process before (fuzz/known/).
local GC_MT = { __gc = function()
  gc_calls = gc_calls + 1
  pcall(funcs.call, "echo:u32", 7)
  pcall(funcs.stats, "echo:u32")
  local ok, f = pcall(funcs.async, "pools:lazy_add", 1, 2)
  if ok and f then pcall(f.cancel, f) end
  -- Known defect (see the report): a method of a future called from a finalizer that runs
  -- while that same future converts its result deadlocks. FUZZ_KNOWN=1 keeps it in.
  local rec = KNOWN_DEFECTS and live and live[1]
  if rec then pcall(rec.f.wait, rec.f, 0) end
end }
-- Lua 5.4 turns a finalizer's error into a warning; 5.3 raises it from whatever allocation
-- ran the collector, funcs' or the program's own: there, the finalizer only counts.
local GC_RAISE_MT = { __gc = function()
  if warn then error("FUZZGC finalizer raised") end
  gc_calls = gc_calls + 1
end }
-- A table with one of these finalizers. Lua 5.1 and LuaJIT run __gc for userdata only: there
-- the table's own metatable holds a proxy userdata (newproxy) with the finalizer, collected
-- with the table (funcs reads tables raw: the metatable's extra field is not seen).
local TABLE_GC = _VERSION ~= "Lua 5.1"
local function with_finalizer(t, mt)
  if TABLE_GC or not newproxy then return setmetatable(t, mt) end
  local proxy = newproxy(true)
  getmetatable(proxy).__gc = mt.__gc
  return setmetatable(t, { __gc = mt.__gc, __proxy = proxy })
end

local INTS = { 0, 1, -1, 2, 7, 42, 127, 128, 255, 256, -128, -129, 32767, 32768, 65535, 65536, -32768, -32769,
  2147483647, 2147483648, -2147483648, -2147483649, 4294967295, 4294967296, MAXINT, MININT,
  MAXINT_1, MININT_1, 9007199254740992, 9007199254740993, 0xD800, 0xDFFF, 0x10FFFF,
  0x110000, 1099511627776, -9007199254740992 } -- (the last two: 1 << 40, -(1 << 53))
local FLOATS = { 0.0, -0.0, 0.5, -0.5, 1.5, 1.0, 255.0, 256.0, 2 ^ 31, 2 ^ 32, 2 ^ 53, 2 ^ 53 + 2, 2 ^ 63, -2 ^ 63,
  2 ^ 64, -2 ^ 64, 1e308, -1e308, 5e-324, 1e-300, 0 / 0, -(0 / 0), math.huge, -math.huge, 3.4028235e38, 3.5e38 }
local STRS = { "", "a", "x", "é", "\244\143\191\191", "\240\159\152\128", "ab", "red", "green", "blue", "read", "write",
  "execute", "circle", "square", "at", "none", "ok", "err", "\0", "a\0b", "\255", "\195", "\237\160\128",
  "\244\144\128\128", "\192\128", "42", "-1", "0x10", " 1", "nan", "inf", "1e309", "echo:u8", "::", "read,write",
  "top_left", "top-left", "tag-count", "Hello", string.rep("z", 300) }
local IDS = { "", ":", "echo:", ":u8", "echo:u8\0", "echo:U8", "ECHO:u8", "nope:x", "echo:nope", "examples:wasm",
  "web:service", "web:api", "web:greet_endpoint", "examples:hello_lua", "sb:files", "\255:\254", "echo::u8",
  " echo:u8", "echo:u8 ", string.rep("a", 100000) .. ":b", "echo", "examples:api" }

local BIG = {}
BIG.s64k = string.rep("y", 65536)
BIG.s1m = string.rep("abcdefgh", 131072)
BIG.s16m = string.rep("x", 16 * 1024 * 1024)
BIG.bad_utf8_late = string.rep("a", 4000) .. "\226\130" .. "b"
BIG.nul_string = string.rep("\0", 70000)
local function chain(n, dict)
  local t = {}
  local cur = t
  for _ = 1, n do
    local nxt = {}
    if dict then cur.x = nxt else cur[1] = nxt end
    cur = nxt
  end
  return t
end
BIG.deep127, BIG.deep128, BIG.deep129 = chain(126), chain(127), chain(128)
BIG.deep200, BIG.deep100k, BIG.deepdict200 = chain(200), chain(100000), chain(200, true)
BIG.arr100k = {}
for i = 1, 100000 do BIG.arr100k[i] = i end
BIG.arr1m = {}
for i = 1, 1000000 do BIG.arr1m[i] = i % 4096 end
BIG.strs10k = {}
for i = 1, 10000 do BIG.strs10k[i] = "s" .. i end
BIG.sparse40 = { 1, 2, 3, 4, 5 }
BIG.sparse40[8], BIG.sparse40[9] = 1, 1
for k = 4, 40 do BIG.sparse40[2 ^ k] = 1 end
BIG.cyc = {}
BIG.cyc[1] = BIG.cyc
BIG.cyc.x = BIG.cyc
do
  local a, b = {}, {}
  a[1], b[1] = b, a
  BIG.mutual = a
  local u = { id = 1, name = "n", tags = {}, color = "red", perms = {}, shapes = {}, score = { ok = 1 }, raw = "",
    pair = { 1, 2 }, initial = "c", active = true }
  u.tags[1] = u
  BIG.cyc_user = { u }
  local v = { circle = 1 }
  v.circle = v
  BIG.cyc_shape = { v }
end

local closed_file = io.open(os.tmpname(), "w")
closed_file:close()
local dead_co = coroutine.create(function() end)
coroutine.resume(dead_co)
local LIGHT = debug and debug.upvalueid and debug.upvalueid(function() return R end, 1)

local gen_any

local function gen_table(depth)
  local c = R(22)
  if c == 1 then return {}, "{}" end
  if c == 2 then
    local t, n = {}, R(0, 8)
    for i = 1, n do t[i] = gen_any(depth + 1) end
    return t, "arr" .. n
  end
  if c == 3 then return { 1, nil, 3 }, "holes" end
  if c == 4 then
    local t = { 1, 2, 3 }
    local k = pick({ 2 ^ 40, 2 ^ 53, 2 ^ 63, MAXINT, MININT, 0, -1, 1.5, 2 ^ 31, 4294967296 })
    t[k] = 1
    return t, "sparse[" .. tostring(k) .. "]"
  end
  if c == 5 then
    local t = { 1, 2, x = 1, [true] = 1, [print] = 3, ["tag-count"] = 2, [2.5] = 1 }
    t[{}] = 2
    return t, "mixedkeys"
  end
  if c == 6 then
    local name = pick({ "deep127", "deep128", "deep129", "deep200", "deep100k", "deepdict200" })
    return BIG[name], name
  end
  if c == 7 then
    local name = pick({ "cyc", "mutual", "cyc_user", "cyc_shape" })
    return BIG[name], name
  end
  if c == 8 then
    local m = pick(METATABLES)
    local base = pick({ function() return {} end, function() return { 1, 2, 3 } end,
      function() return { id = 1, name = "x", circle = 1, ok = 1 } end })()
    return setmetatable(base, m[1]), "meta(" .. m[2] .. ")"
  end
  if c == 9 then return with_finalizer({ 1, 2 }, GC_MT), "gc-calls-funcs" end
  if c == 10 then return with_finalizer({}, GC_RAISE_MT), "gc-raises" end
  if c == 11 then
    if chance(0.05) then return BIG.arr1m, "arr1m" end
    return BIG.arr100k, "arr100k"
  end
  if c == 12 then return BIG.strs10k, "strs10k" end
  if c == 13 then return BIG.sparse40, "sparse40" end
  if c == 14 then
    local t = {}
    for i = 1, R(1, 5) do t[pick(STRS)] = gen_any(depth + 1) end
    return t, "dict"
  end
  if c == 15 then return { ok = gen_any(depth + 1) }, "{ok=}" end
  if c == 16 then return { err = gen_any(depth + 1) }, "{err=}" end
  if c == 17 then return { ok = 1, err = 2 }, "{ok,err}" end
  if c == 18 then return { circle = 1, square = 2 }, "2cases" end
  if c == 19 then return { "read", "bogus" }, "flagnames" end
  if c == 20 then return { [1] = 1, [3] = 3, n = 3 }, "gap" end
  if c == 21 then
    local t = setmetatable({}, { __index = function(_, k) meta_hits = meta_hits + 1; error("FUZZMETA __index " .. tostring(k)) end,
      __len = function() meta_hits = meta_hits + 1; error("FUZZMETA __len") end })
    return t, "empty-raising-proxy"
  end
  local t = {}
  for i = 1, 3 do t[i] = gen_any(depth + 1) end
  return t, "nested"
end

local function gen_string()
  local c = R(12)
  if c <= 5 then return pick(STRS), "str" end
  if c == 6 then
    local n = R(0, 40)
    local b = {}
    for i = 1, n do b[i] = string.char(R(0, 255)) end
    return table.concat(b), "bytes" .. n
  end
  if c == 7 then
    local n = R(0, 40)
    local b = {}
    for i = 1, n do b[i] = string.char(R(32, 126)) end
    return table.concat(b), "ascii" .. n
  end
  if c == 8 then return BIG.s64k, "s64k" end
  if c == 9 then
    if chance(0.03) then return BIG.s16m, "s16m" end
    return BIG.s1m, "s1m"
  end
  if c == 10 then return BIG.bad_utf8_late, "badutf8late" end
  if c == 11 then return BIG.nul_string, "nuls70k" end
  return pick(IDS), "idstr"
end

local function gen_userdata()
  local c = R(8)
  if c == 1 then return io.stdout, "io.stdout" end
  if c == 2 then return closed_file, "closedfile" end
  if c == 3 and #recent_futures > 0 then return pick(recent_futures).f, "future" end
  if c == 4 and #recent_errors > 0 then return pick(recent_errors), "errobj" end
  if c == 5 and #recent_execs > 0 then return pick(recent_execs).ex, "executor" end
  if c == 6 and LIGHT then return LIGHT, "lightuserdata" end
  if c == 7 then return funcs.errors, "funcs.errors" end
  return io.stderr, "io.stderr"
end

local FNS = {
  { print, "print" }, { function() end, "fn" }, { funcs.call, "funcs.call" }, { coroutine.yield, "yield" },
  { function() meta_hits = meta_hits + 1; error("FUZZFN argument function was called") end, "raisingfn" },
  { string.rep, "string.rep" },
}

function gen_any(depth)
  depth = depth or 0
  local c = R(depth > 3 and 9 or 12)
  if c == 1 then return nil, "nil" end
  if c == 2 then return chance(0.5), "bool" end
  if c == 3 then local v = pick(INTS); return v, "i" .. v end
  if c == 4 then local v = pick(FLOATS); return v, "f" .. tostring(v) end
  if c == 5 then
    -- Lua 5.3 refuses the whole integer range as one interval: two halves (math.mininteger // 2,
    -- math.maxinteger // 2). Before 5.3: the integers a double holds exactly.
    if chance(0.5) then
      if HAS_INTEGERS then return R(-4611686018427387904, 4611686018427387903) * 2 + R(0, 1), "irand" end
      return randint(-2 ^ 53, 2 ^ 53), "irand"
    end
    return (R() - 0.5) * 10 ^ R(-5, 20), "frand"
  end
  if c == 6 or c == 7 then return gen_string() end
  if c == 8 then local f = pick(FNS); return f[1], f[2] end
  if c == 9 then
    local k = R(3)
    if k == 1 then return coroutine.create(function() coroutine.yield() end), "thread" end
    if k == 2 then return dead_co, "deadthread" end
    -- (Lua 5.1 and LuaJIT: nil in the main thread)
    return coroutine.running(), "running"
  end
  if c == 10 then return gen_userdata() end
  return gen_table(depth)
end

-- Well-typed values for a WIT type, corrupted now and then.
local RANGES = {
  s8 = { -128, 127 }, u8 = { 0, 255 }, s16 = { -32768, 32767 }, u16 = { 0, 65535 },
  s32 = { -2147483648, 2147483647 }, u32 = { 0, 4294967295 }, s64 = { MININT, MAXINT },
  u64 = { MININT, MAXINT },
}
local CORRUPT = 0.08
local gen_typed
local function gen_int(kind)
  local r = RANGES[kind]
  local c = R(10)
  if kind == "s64" or kind == "u64" then
    -- spinning guests take a count: keep it small unless corrupted
    if c <= 6 then return R(0, 1000) end
    if c <= 8 then return pick(INTS) end
    return pick(FLOATS)
  end
  if c <= 5 then return randint(r[1], r[2]) end
  if c <= 7 then return pick({ r[1], r[2], 0, 1 }) end
  if c == 8 then return (randint(r[1], r[2]) + 0.0) end
  if c == 9 then return pick({ r[1] - 1, r[2] + 1 }) end
  return pick(FLOATS)
end
local function scalar(kind)
  if kind == "bool" then return chance(0.5) end
  if RANGES[kind] then return gen_int(kind) end
  if kind == "f32" or kind == "f64" then
    if chance(0.6) then return (R() - 0.5) * 1000 end
    return pick(FLOATS)
  end
  if kind == "char" then
    return pick({ "a", "é", "\244\143\191\191", "\240\159\152\128", 65, 0x10FFFF, 0xD800, 0x110000, -1, "ab", "", "\255" })
  end
  if kind == "string" then
    local c = R(10)
    if c <= 6 then return pick(STRS) end
    if c == 7 then return string.rep("w", R(0, 2000)) end
    return (gen_string())
  end
  if kind == "bytes" then
    if chance(0.6) then return (gen_string()) end
    local t = {}
    for i = 1, R(0, 8) do t[i] = R(-1, 256) end
    return t
  end
  error("unknown scalar " .. kind)
end
function gen_typed(ty, depth)
  depth = depth or 0
  if chance(CORRUPT) then return (gen_any(depth)) end
  if type(ty) == "string" then return scalar(ty) end
  local k = ty[1]
  if k == "list" then
    local n = (depth == 0 and chance(0.02)) and 300 or R(0, depth == 0 and 5 or 3)
    local t = {}
    for i = 1, n do t[i] = gen_typed(ty[2], depth + 1) end
    return t
  elseif k == "option" then
    if chance(0.3) then return nil end
    return gen_typed(ty[2], depth + 1)
  elseif k == "result" then
    if chance(0.5) then return { ok = gen_typed(ty[2], depth + 1) } end
    return { err = gen_typed(ty[3], depth + 1) }
  elseif k == "tuple" then
    local t = {}
    for i = 2, #ty do t[i - 1] = gen_typed(ty[i], depth + 1) end
    return t
  elseif k == "record" then
    local t = {}
    for _, f in ipairs(ty[2]) do
      if not chance(0.02) then t[f[1]] = gen_typed(f[2], depth + 1) end
    end
    return t
  elseif k == "variant" then
    local case = pick(ty[2])
    if not case[2] and chance(0.5) then return case[1] end
    return { [case[1]] = case[2] and gen_typed(case[2], depth + 1) or true }
  elseif k == "enum" then
    if chance(0.7) then return pick(ty[2]) end
    return R(-1, #ty[2])
  elseif k == "flags" then
    local c = R(3)
    if c == 1 then return { [pick(ty[2])] = true, [pick(ty[2])] = chance(0.5) } end
    if c == 2 then return { pick(ty[2]), pick(ty[2]) } end
    return R(-1, 8)
  end
  error("unknown type " .. tostring(k))
end

-- Arguments for a target: values, count, description.
local function args_for(t)
  local c = R(100)
  local args, n, how = {}, #t.p, "typed"
  if c <= 82 then
    for i = 1, n do args[i] = gen_typed(t.p[i]) end
  elseif c <= 92 then
    -- Values of any type, mostly as many as the function takes (so that they get converted).
    if chance(0.3) then n = R(0, 5) end
    local tags = {}
    for i = 1, n do args[i], tags[i] = gen_any() end
    how = "any(" .. table.concat(tags, ",") .. ")"
  elseif c <= 98 then
    n = math.max(0, n + pick({ -1, 1 }))
    for i = 1, n do args[i] = gen_typed(t.p[i] or "u32") end
    how = "arity" .. n
  else
    n = pick({ 250, 1000 })
    for i = 1, n do args[i] = i end
    how = "many" .. n
  end
  return args, n, how
end

-- A random ID for the misuse cases: strings that are not functions, or not strings at all.
local function random_id()
  if chance(0.6) then return pick(IDS), "idchaff" end
  return gen_any()
end

local WAITS = { nil, 0, -0.0, 1, 2, 5, 0.5, 1e-300, -1, 0 / 0, math.huge, -math.huge, 2 ^ 53, 2 ^ 63, 2 ^ 64,
  MAXINT, MININT, "10", "x", {}, true, 1e308, 10, 50 }
local NWAITS = 24
local TIMEOUTS = { 0, -1, 0 / 0, math.huge, -math.huge, 2 ^ 53, 2 ^ 63, 2 ^ 64, 0.5, 1, 2, 5, 10, 20, 50, 1.0, 25.0,
  "10", {}, true, MAXINT, MININT, -0.0, 1e-300, 2 ^ 40, 2 ^ 40 + 1, 1000 }

-- ---------------------------------------------------------------------------------------
-- Operations.

live = {} -- futures: {f = future, t = target, canceled = bool}
local MAX_LIVE = 48

local function describe_wait(w)
  if type(w) == "table" then return "{}" end
  return tostring(w)
end

local function keep_future(f, t, via, args, n)
  if type(f) ~= "userdata" or is_err(f) then return end
  local rec = { f = f, t = t, via = via, args = args, n = n }
  live[#live + 1] = rec
  remember(recent_futures, rec, 8)
  if #live > MAX_LIVE then
    local old = table.remove(live, R(#live))
    if chance(0.5) then pcall(old.f.cancel, old.f) end
  end
end

local ops = {}

-- The entry a call goes to: now and then a random ID (mostly unknown), else a fixture's.
local function call_target()
  if chance(0.05) then
    local id, idtag = random_id()
    return { traps = false, p = { "u32" } }, id, idtag
  end
  local t = pick_target("plain")
  return t, t.id, t.id
end

function ops.call()
  local t, id, idtag = call_target()
  local args, n, how = args_for(t)
  current_desc = ("call %s %s"):format(idtag, how)
  mark(current_desc)
  check({ traps = t.traps, known = KNOWN[id] ~= nil, args = args, n = n }, pcall(funcs.call, id, unpack(args, 1, n)))
end

function ops.async()
  local t, id, idtag = call_target()
  local args, n, how = args_for(t)
  current_desc = ("async %s %s"):format(idtag, how)
  mark(current_desc)
  local ok, f = check({ traps = t.traps, known = KNOWN[id] ~= nil, args = args, n = n },
    pcall(funcs.async, id, unpack(args, 1, n)))
  if ok then keep_future(f, t, "async", args, n) end
end

-- Checks the invariants of one future after an operation on it.
local function future_invariants(rec, what)
  local f = rec.f
  local ok1, complete = pcall(f.is_complete, f)
  local ok2, canceled = pcall(f.is_canceled, f)
  if not (ok1 and ok2) then return finding("future-method-failed", what) end
  if canceled and not complete then finding("canceled-but-not-complete", what) end
  if rec.canceled and not complete then finding("cancel-did-not-complete", what) end
  if canceled then
    local ok, v, err = pcall(f.result, f)
    if not ok or v ~= nil or not is_err(err) or err:kind() ~= "CANCELED" then
      finding("canceled-result-not-CANCELED", what .. " " .. tostring(v) .. " " .. tostring(err))
    end
  end
end

function ops.future()
  if #live == 0 then return ops.async() end
  local idx = R(#live)
  local rec = live[idx]
  local f = rec.f
  local ctx = { traps = rec.t.traps, known = true, args = rec.args, n = rec.n }
  local c = R(12)
  if c <= 3 then
    local w = WAITS[R(NWAITS)]
    current_desc = ("wait(%s) %s"):format(describe_wait(w), rec.t.id or "?")
    mark(current_desc)
    local ok, v, err = check(ctx, pcall(f.wait, f, w))
    -- A wait without a usable limit returns only when the call is complete.
    if ok and (w == nil or w == math.huge or w == 2 ^ 64 or w == 2 ^ 63) then
      local _, complete = pcall(f.is_complete, f)
      if not complete then finding("wait-returned-incomplete", current_desc) end
    end
    if ok and w == 0 and err and is_err(err) and err:kind() ~= "TIMEOUT" and not f:is_complete() then
      finding("wait0-not-TIMEOUT", err:kind())
    end
  elseif c == 4 then
    current_desc = "cancel " .. (rec.t.id or "?")
    mark(current_desc)
    local ok, r = check(ctx, pcall(f.cancel, f))
    if ok then
      rec.canceled = true
      if r ~= true then finding("cancel-not-true", tostring(r)) end
    end
  elseif c == 5 then
    current_desc = "result " .. (rec.t.id or "?")
    mark(current_desc)
    check(ctx, pcall(f.result, f))
  elseif c == 6 then
    current_desc = "is_complete/is_canceled " .. (rec.t.id or "?")
    mark(current_desc)
    check(ctx, pcall(f.is_complete, f))
    check(ctx, pcall(f.is_canceled, f))
  elseif c == 7 then
    current_desc = "cancel+wait " .. (rec.t.id or "?")
    mark(current_desc)
    pcall(f.cancel, f)
    rec.canceled = true
    check(ctx, pcall(f.wait, f))
    check(ctx, pcall(f.cancel, f))
  elseif c == 8 then
    current_desc = "wait+wait " .. (rec.t.id or "?")
    mark(current_desc)
    check(ctx, pcall(f.wait, f))
    check(ctx, pcall(f.wait, f, 0))
    check(ctx, pcall(f.result, f))
  elseif c == 9 then
    -- Methods of a future with extra arguments, and cancel after completion.
    local extra, tag = gen_any()
    current_desc = "future-methods-extra " .. tag
    mark(current_desc)
    check(ctx, pcall(f.is_complete, f, extra))
    check(ctx, pcall(f.result, f, extra, extra))
    if chance(0.5) then
      local ok, r = check(ctx, pcall(f.cancel, f, extra))
      if ok and r == true then rec.canceled = true end
    end
  elseif c == 10 then
    -- Dropped: garbage, running or not.
    current_desc = "drop future " .. (rec.t.id or "?")
    mark(current_desc)
    table.remove(live, idx)
    if chance(0.3) then collectgarbage("step", 200) end
    return
  else
    local w = pick({ 0, 1, 2 })
    current_desc = ("poll wait(%d) %s"):format(w, rec.t.id or "?")
    mark(current_desc)
    check(ctx, pcall(f.wait, f, w))
  end
  future_invariants(rec, current_desc)
  local ok, complete = pcall(f.is_complete, f)
  if ok and complete and chance(0.5) then table.remove(live, idx) end
end

local function gen_options()
  local c = R(10)
  local tv = TIMEOUTS[R(#TIMEOUTS)]
  if c <= 5 then return { timeout = tv }, "timeout=" .. describe_wait(tv), tv end
  if c == 6 then return {}, "{}", nil end
  if c == 7 then return { timeout = tv, bogus = 1 }, "timeout+bogus", nil end
  if c == 8 then
    local o = setmetatable({}, { __index = function() meta_hits = meta_hits + 1; error("FUZZMETA options __index") end })
    return o, "raising-index-options", nil
  end
  if c == 9 then return { [1] = 5, [2] = 6 }, "array-options", nil end
  local v, tag = gen_any()
  return v, "opts:" .. tag, nil
end

function ops.executor_new()
  local base, mode = nil, "plain"
  if #recent_execs > 0 and chance(0.5) then
    local rec = pick(recent_execs)
    base, mode = rec.ex, rec.mode
  else
    local ok, ex = pcall(funcs.new, chance(0.1) and gen_any() or nil)
    if not ok or type(ex) ~= "userdata" then return finding("funcs.new-failed", tostring(ex)) end
    base = ex
  end
  local opts, tag, tv = gen_options()
  current_desc = "with_options " .. tag
  mark(current_desc)
  local ok, ex = check({}, pcall(base.with_options, base, opts))
  if ok and type(ex) == "userdata" then
    if type(opts) == "table" and rawget(opts, "timeout") ~= nil then
      if type(tv) == "number" and tv >= 1 and tv <= 50 then mode = "short" else mode = "long" end
    end
    remember(recent_execs, { ex = ex, mode = mode }, 8)
  end
end

function ops.executor_call()
  if #recent_execs == 0 then return ops.executor_new() end
  local rec = pick(recent_execs)
  local ex = rec.ex
  local t = pick_target(rec.mode)
  local args, n, how = args_for(t)
  local async = chance(0.5)
  current_desc = ("executor(%s):%s %s %s"):format(rec.mode, async and "async" or "call", t.id, how)
  mark(current_desc)
  local ctx = { traps = t.traps, known = true }
  if async then
    local ok, f = check(ctx, pcall(ex.async, ex, t.id, unpack(args, 1, n)))
    if ok then keep_future(f, t, "executor") end
  else
    check(ctx, pcall(ex.call, ex, t.id, unpack(args, 1, n)))
  end
end

function ops.stats()
  if chance(0.2) then
    current_desc = "stats()"
    mark(current_desc)
    local ok, all = check({}, pcall(funcs.stats))
    if ok and type(all) ~= "table" and not shut_down then finding("stats-not-table", tostring(all)) end
    return
  end
  local id, tag
  if chance(0.7) then local t = pick(TARGETS); id, tag = t.id, t.id else id, tag = random_id() end
  current_desc = "stats " .. tag
  mark(current_desc)
  local ok, s = check({ known = KNOWN[id] ~= nil }, pcall(funcs.stats, id))
  if ok and type(s) == "table" and KNOWN[id] then
    for _, k in ipairs({ "calls", "failures", "in_flight", "queued", "workers", "instances" }) do
      -- (before Lua 5.3, where numbers are doubles: an integral value)
      if number_type(s[k]) ~= "integer" or s[k] < 0 then finding("stats-field", k .. "=" .. tostring(s[k])) end
    end
    if type(s.calls) == "number" and type(s.failures) == "number" and s.failures > s.calls then
      finding("stats-failures>calls", id)
    end
  end
end

function ops.error_methods()
  if #recent_errors == 0 then return ops.call() end
  local err = pick(recent_errors)
  local c = R(3)
  if c == 1 then
    current_desc = "err methods"
    mark(current_desc)
    check_err(err, { traps = true, known = false }, true)
    pcall(tostring, err)
    pcall(function() return err.nope, err[1], err[err] end)
  else
    -- A method called on the wrong self, with extra arguments.
    local name = pick({ "kind", "message", "retryable", "details" })
    local self_v, tag = gen_any()
    if chance(0.2) and #live > 0 then self_v, tag = pick(live).f, "future" end
    current_desc = "err." .. name .. "(" .. tag .. ")"
    mark(current_desc)
    check({}, pcall(err[name], self_v, gen_any()))
  end
end

function ops.wrong_self()
  local obj, names
  local c = R(3)
  if c == 1 and #live > 0 then
    obj, names = pick(live).f, { "wait", "cancel", "result", "is_complete", "is_canceled" }
  elseif c == 2 and #recent_execs > 0 then
    obj, names = pick(recent_execs).ex, { "call", "async", "with_options" }
  else
    obj, names = funcs.new(), { "call", "async", "with_options" }
  end
  local name = pick(names)
  local method = obj[name]
  local self_v, tag = gen_any()
  if chance(0.2) and #recent_errors > 0 then self_v, tag = pick(recent_errors), "errobj" end
  -- An executor method with a wrong self must not run anything; with the right self and a
  -- random first argument (the ID) only bounded targets can be named by random_id.
  current_desc = ("%s(%s)"):format(name, tag)
  mark(current_desc)
  check({ traps = true }, pcall(method, self_v, (random_id())))
end

local await = require("funcs.await")

-- Calls from inside a coroutine: arguments whose metamethods yield, await on futures,
-- coroutines left suspended.
function ops.coroutine()
  local t = pick_target("plain")
  local args, n, how = args_for(t)
  if chance(0.3) then
    local m = METATABLES[R(#METATABLES)]
    args[R(math.max(1, n))] = setmetatable({ 1 }, m[1])
    n = math.max(1, n)
    how = how .. "+meta(" .. m[2] .. ")"
  end
  local kind = R(4)
  current_desc = ("coroutine[%d] %s %s"):format(kind, t.id, how)
  mark(current_desc)
  local ctx = { traps = t.traps, known = true }
  local co = coroutine.create(function()
    if kind == 1 then
      check(ctx, pcall(funcs.call, t.id, unpack(args, 1, n)))
    elseif kind == 2 then
      local ok, f = check(ctx, pcall(funcs.async, t.id, unpack(args, 1, n)))
      if ok and type(f) == "userdata" and not is_err(f) then
        check(ctx, ypcall(await, f))
        keep_future(f, t, "coroutine")
      end
    elseif kind == 3 then
      local fs = {}
      for i = 1, R(1, 4) do
        local ok, f = pcall(funcs.async, t.id, unpack(args, 1, n))
        if ok and type(f) == "userdata" and not is_err(f) then fs[#fs + 1] = f end
      end
      check(ctx, ypcall(await.all, fs))
    else
      local ex = funcs.new()
      check(ctx, pcall(ex.call, ex, t.id, unpack(args, 1, n)))
      coroutine.yield("between")
      check(ctx, pcall(funcs.stats, t.id))
    end
  end)
  local abandon_at = chance(0.1) and R(1, 3) or math.huge
  for step = 1, 200000 do
    if coroutine.status(co) == "dead" or step >= abandon_at then break end
    local ok, e = coroutine.resume(co)
    if not ok then check_raised(e, ctx) break end
    if type(e) == "string" and e:find("FUZZMETA", 1, true) then
      -- A metamethod of an argument ran and yielded out of funcs.
      finding("argument-code-run", e)
    end
  end
end

local TMP = os.getenv("TMPDIR") or "/tmp"
local mut_dir = ("%s/funcs-fuzz-%d-%d"):format(TMP, SEED, math.floor(funcs.clock() * 1000) % 100000)
os.execute("mkdir -p " .. mut_dir .. " && cp spec/fixtures/pools/guest.wat spec/fixtures/http/greet.wat "
  .. "spec/fixtures/sandbox/sleep-test.wasm " .. mut_dir .. "/")
local MUT_SOURCES = {}
for _, p in ipairs({ "spec/fixtures/http/_index.yaml", "spec/fixtures/hardening/_index.yaml",
  "spec/fixtures/pools/_index.yaml", "spec/fixtures/sandbox/_index.yaml" }) do
  local f = assert(io.open(p))
  local text = f:read("*a")
  f:close()
  -- Its own namespace, so that it never replaces the fixtures' entries.
  text = text:gsub("\nnamespace: %w+", "\nnamespace: mut")
  MUT_SOURCES[#MUT_SOURCES + 1] = text
end
local MUT_TOKENS = { "0", "-1", "1e300", "18446744073709551616", "9223372036854775807", "''", "~", "[]", "{}",
  "true", "\"\\xff\"", "&a", "*a", "!!binary AA==", "0x7fffffff", ".nan", ".inf", "-.inf", "'${env:NOPE}'",
  "'${env:HOME}'", "file://../../../etc/passwd", "file:///etc/passwd", "'(module)'", "\"(component)\"" }
-- Known defect: pool sizes of many thousands of threads exhaust the process (a load of
-- `workers: 100000` takes 15 s and the next call fails or panics); kept at most 16 here, unless
-- FUZZ_KNOWN=1, so that the campaign tests everything else.
local POOL_KEYS = { workers = true, size = true, max_size = true, buffer = true }
local function sanitize(text)
  if KNOWN_DEFECTS then return text end
  return (text:gsub("(%f[%w](%w+)%s*:[ \t]*)([^,}\n]*)", function(prefix, key, value)
    if POOL_KEYS[key] then
      local v = value:match("^%s*(%d+)%s*$")
      if not (v and tonumber(v) <= 16) then return prefix .. "16" end
    end
    return nil
  end))
end
local function mutate(text)
  for _ = 1, R(1, 4) do
    local c = R(6)
    if c == 1 then -- a scalar value replaced
      local spots = {}
      for pos in text:gmatch("():%s[^\n]") do spots[#spots + 1] = pos end
      if #spots > 0 then
        local at = pick(spots)
        local eol = text:find("\n", at, true) or #text
        text = text:sub(1, at + 1) .. pick(MUT_TOKENS) .. text:sub(eol)
      end
    elseif c == 2 then -- a line deleted
      local lines = {}
      for l in (text .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
      table.remove(lines, R(#lines))
      text = table.concat(lines, "\n")
    elseif c == 3 then -- a line duplicated
      local lines = {}
      for l in (text .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
      local i = R(#lines)
      table.insert(lines, i, lines[i])
      text = table.concat(lines, "\n")
    elseif c == 4 then -- a byte replaced
      local i = R(math.max(#text, 1))
      text = text:sub(1, i - 1) .. string.char(R(0, 255)) .. text:sub(i + 1)
    elseif c == 5 then -- truncated
      text = text:sub(1, R(math.max(#text, 1)))
    else -- a byte inserted (math.random(0) fails: an empty text gets its byte first)
      local i = R(math.max(#text, 1))
      text = text:sub(1, i) .. pick({ ":", "-", " ", "\t", "{", "[", "'", "\"", "\n", "#", "&", "*", "!" }) .. text:sub(i + 1)
    end
  end
  return sanitize(text)
end

local RELOADS = { "spec/fixtures/echo", "spec/fixtures/direct", "spec/fixtures/sandbox", "spec/fixtures/pools",
  "spec/fixtures/hardening", "spec/fixtures/good", "spec/fixtures/http", "examples/app" }
local BAD_PATHS = { "spec/fixtures/bad/bad_hash", "spec/fixtures/bad/duplicate_route", "spec/fixtures/bad/escape/reg",
  "spec/fixtures/bad/malformed", "spec/fixtures/bad/missing_file", "spec/fixtures/bad/no_method",
  "spec/fixtures/bad/not_http", "spec/fixtures/bad/unknown_field", "spec/fixtures/bad/unknown_func",
  "spec/fixtures/bad/unknown_import", "spec/fixtures/bad/unknown_router", "", "/nonexistent/x", "/dev/null",
  "README.md", "spec/fixtures/echo/echo.wat", "spec/fixtures/echo\0/x", "\255\254", "/proc/self/status",
  string.rep("d/", 3000), "spec/fixtures/echo/_index.yaml/", "spec/fixtures/answer_raw.wasm" }

function ops.load()
  local c = R(10)
  if c <= 4 then
    local path = pick(RELOADS)
    current_desc = "reload " .. path
    mark(current_desc)
    local ok, summary, err = check({ load = true }, pcall(funcs.load, path))
    if ok and not summary and not shut_down then finding("fixture-reload-failed", tostring(err)) end
  elseif c <= 7 then
    local path = pick(BAD_PATHS)
    current_desc = "load-bad " .. path:sub(1, 60)
    mark(current_desc)
    check({ load = true }, pcall(funcs.load, path))
  elseif c == 8 then
    local v, tag = gen_any()
    if type(v) == "string" then v = "/nonexistent/" .. v end
    current_desc = "load-any " .. tag
    mark(current_desc)
    check({ load = true }, pcall(funcs.load, v))
  else
    local text = mutate(pick(MUT_SOURCES))
    local file = mut_dir .. "/_index.yaml"
    local f = assert(io.open(file, "wb"))
    f:write(text)
    f:close()
    current_desc = "load-mutated " .. mut_dir
    mark(current_desc)
    local ok, summary = check({ load = true }, pcall(funcs.load, mut_dir))
    if ok and type(summary) == "table" and type(summary.entries) == "table" and #summary.entries > 0 then
      -- Its functions may spin without limit: only through a short deadline, or cancelled.
      local id = pick(summary.entries)
      local ex = funcs.new():with_options({ timeout = 20 })
      local args = {}
      for i = 1, R(0, 2) do args[i] = gen_any() end
      current_desc = "call-mutated " .. id
      mark(current_desc)
      check({ traps = true }, pcall(ex.call, ex, id, unpack(args)))
      -- (through the executor too: an inline pool runs funcs.async's call before it returns,
      -- so without a deadline a spinning entry given a huge count would never come back)
      local okf, fut = pcall(ex.async, ex, id, unpack(args))
      if okf and type(fut) == "userdata" and not is_err(fut) then
        check({ traps = true }, pcall(fut.cancel, fut))
        check({ traps = true }, pcall(fut.wait, fut))
      end
    end
  end
end

local HTTP_IDS = { "web:service", "web:strict", "examples:api" }
local http_running = {}
function ops.http()
  local c = R(8)
  if c <= 2 then
    local id = pick(HTTP_IDS)
    current_desc = "http.start " .. id
    mark(current_desc)
    local ok, addr = check({ known = true }, pcall(funcs.http.start, id))
    if ok and type(addr) == "string" then http_running[id] = true end
  elseif c <= 4 then
    local id = pick(HTTP_IDS)
    current_desc = "http.stop " .. id
    mark(current_desc)
    check({}, pcall(funcs.http.stop, id))
    http_running[id] = nil
  elseif c == 5 then
    local id = pick(HTTP_IDS)
    current_desc = "http.addr " .. id
    mark(current_desc)
    check({}, pcall(funcs.http.addr, id))
  else
    local fn = pick({ "start", "stop", "addr", "serve" })
    local v, tag = random_id()
    -- serve blocks on a service that exists: only IDs that are not services.
    if fn == "serve" and type(v) == "string" then v = "nope:" .. v end
    current_desc = ("http.%s(%s)"):format(fn, tag)
    mark(current_desc)
    check({}, pcall(funcs.http[fn], v, gen_any()))
  end
end

function ops.misc()
  local c = R(10)
  current_desc = "misc" .. c
  mark(current_desc)
  if c == 1 then check({}, pcall(funcs.engine, gen_any()))
  elseif c == 2 then check({}, pcall(funcs.clock, gen_any()))
  elseif c == 3 then
    local ok, v = pcall(function() return funcs.errors[gen_any() or 1], funcs._VERSION, funcs.http.nope end)
    if not ok then check_raised(v, {}) end
  elseif c == 4 then collectgarbage("step", 100)
  elseif c == 5 then if chance(0.1) then collectgarbage("collect") else collectgarbage("step", 10) end
  elseif c == 6 then
    local ok, ex = pcall(funcs.new, gen_any(), gen_any())
    if ok and type(ex) == "userdata" then check({}, pcall(function() return ex.nope, ex[1], tostring(ex) end)) end
  elseif c == 7 then
    -- Any function of the module with random arguments (not load, serve, shutdown).
    local fn = pick({ funcs.call, funcs.async, funcs.stats, funcs.new, funcs.engine, funcs.clock, funcs.http.addr,
      funcs.http.stop })
    local a, b = gen_any(), gen_any()
    if fn == funcs.call or fn == funcs.async then a = random_id() end
    check({}, pcall(fn, a, b, gen_any()))
  elseif c == 9 then
    -- funcs.host with anything: a name, a table of anything, or other values.
    local name = chance(0.5) and ("fz:h" .. R(3) .. "/i") or gen_any()
    local k = gen_any()
    if k == nil or k ~= k then k = "k" end -- nil and NaN cannot be keys
    local t = chance(0.5) and { [k] = gen_any(), f = chance(0.5) and print or nil } or gen_any()
    check({}, pcall(funcs.host, name, t))
  elseif c == 10 then
    -- funcs.register with anything, then a call of that ID.
    local id = chance(0.7) and ("fz:reg" .. R(3)) or gen_any()
    -- The fuzzer's own functions would run when called: only a harmless one, or a non-function.
    local fn = gen_any()
    if chance(0.5) or type(fn) == "function" then fn = function(...) return ... end end
    check({}, pcall(funcs.register, id, fn))
    -- The ID may name any entry, one that traps or exits included.
    if type(id) == "string" then check({ traps = true }, pcall(funcs.call, id, gen_any())) end
  else
    local v = pick({ #live > 0 and live[1].f or 1, #recent_execs > 0 and recent_execs[1].ex or 2,
      #recent_errors > 0 and recent_errors[1] or 3 })
    check({}, pcall(function() return tostring(v), v == v, type(v) end))
  end
end

-- Instances a caller holds and their resource handles (SPEC section 15): the C counters
-- guest (build/guests/c-res, when built) and the WAT entries of spec/fixtures/instances.
-- Interleaved calls with handles of this and other instances (live, dropped, moved, of
-- closed or failed instances), drops, closes, async, and references let go for the
-- collector. Every instance has a deadline of 20 ms (its `spin` export loops forever).
local HAS_RES = funcs.load("build/guests/c-res") ~= nil
assert(funcs.load("spec/fixtures/instances"))
local INSTANCE_IDS = { "inst:core", "inst:twins" }
if HAS_RES then
  for _, id in ipairs({ "cres:counters", "cres:counters", "cres:counters_limited", "cres:counters_two" }) do
    INSTANCE_IDS[#INSTANCE_IDS + 1] = id
  end
end
local EXPORTS = { "get-total", "drops", "live", "peek", "consume", "make-many", "sum-all", "maybe",
  "checked", "label", "unlabel", "fail", "spin", "counters#get-total", "bump", "poke", "peek", "boom",
  "a#make", "b#make", "a#value", "b#value", "make", "no-such", "[constructor]counter",
  "counters#[method]counter.get", "counters#[static]counter.merge" }
local METHODS = { "get", "increment", "arm-trap", "arm_trap", "drop", "merge", "new", "nope" }
local instances, handles = {}, {}
local function some_handle()
  if #handles > 0 and chance(0.85) then return handles[R(#handles)] end
  return gen_any()
end
-- Keeps the handles in a result (at any depth, up to a few).
local function keep_handles(v, depth)
  depth = depth or 0
  if type(v) == "userdata" and not is_err(v) then
    handles[#handles + 1] = v
    if #handles > 64 then table.remove(handles, R(#handles)) end
  elseif type(v) == "table" and depth < 3 then
    for _, x in pairs(v) do keep_handles(x, depth + 1) end
  end
end
local function instance_args()
  local args, n = {}, R(0, 3)
  for i = 1, n do
    local c = R(4)
    if c == 1 then args[i] = some_handle()
    elseif c == 2 then args[i] = { some_handle(), some_handle() }
    elseif c == 3 then args[i] = { name = "n", c = some_handle() }
    else args[i] = (chance(0.7) and R(0, 5)) or gen_any() end
  end
  return args, n
end
local ICTX = { traps = true, known = true }
function ops.instance()
  local c = R(12)
  if c <= 2 or #instances == 0 then
    local id = pick(INSTANCE_IDS)
    current_desc = "instantiate " .. id
    mark(current_desc)
    local ok, inst = check(ICTX, pcall(funcs.instantiate, id, { timeout = 20 }))
    if ok and type(inst) == "userdata" and not is_err(inst) then
      instances[#instances + 1] = inst
      if #instances > 12 then table.remove(instances, R(#instances)) end
    end
    return
  end
  local inst = instances[R(#instances)]
  if c <= 5 then
    local export = pick(EXPORTS)
    local args, n = instance_args()
    current_desc = "instance:call " .. export
    mark(current_desc)
    local ok, v = check(ICTX, pcall(inst.call, inst, export, unpack(args, 1, n)))
    if ok then keep_handles(v) end
  elseif c <= 7 and #handles > 0 then
    local h = handles[R(#handles)]
    local m = pick(METHODS)
    local args, n = instance_args()
    current_desc = "handle:" .. m
    mark(current_desc)
    -- (a handle of a core instance or an unknown method: indexing gives nil, calling it raises)
    check(ICTX, pcall(function()
      local f = h[m]
      if f ~= nil then return f(h, unpack(args, 1, n)) end
    end))
  elseif c == 8 then
    local name = pick({ "counter", "counters#counter", "a#thing", "thing", "nope", "" })
    current_desc = "instance:resource " .. name
    mark(current_desc)
    local ok, class = check(ICTX, pcall(inst.resource, inst, name))
    if ok and type(class) == "table" then
      local args, n = instance_args()
      for k, f in pairs(class) do
        current_desc = "class." .. tostring(k)
        mark(current_desc)
        local ok2, v = check(ICTX, pcall(f, unpack(args, 1, n)))
        if ok2 then keep_handles(v) end
      end
    end
  elseif c == 9 then
    current_desc = "instance:async"
    mark(current_desc)
    local args, n = instance_args()
    local ok, f = check(ICTX, pcall(inst.async, inst, pick(EXPORTS), unpack(args, 1, n)))
    if ok and type(f) == "userdata" and not is_err(f) then
      local ok2, v = check(ICTX, pcall(f.wait, f))
      if ok2 then keep_handles(v) end
    end
  elseif c == 10 then
    current_desc = "instance:close"
    mark(current_desc)
    check(ICTX, pcall(inst.close, inst))
    check({}, pcall(tostring, inst))
  else
    -- let go of references: the collector drops them, at the next call of their instance
    current_desc = "instance:let-go"
    mark(current_desc)
    if chance(0.5) and #instances > 0 then table.remove(instances, R(#instances)) end
    for _ = 1, R(0, 8) do
      if #handles > 0 then table.remove(handles, R(#handles)) end
    end
    if chance(0.3) then collectgarbage("step", R(0, 200)) end
    if #handles > 0 then check({}, pcall(tostring, handles[R(#handles)])) end
  end
end

-- Weighted operation table.
local OPS = {
  { ops.call, 30 }, { ops.async, 15 }, { ops.future, 22 }, { ops.executor_new, 4 }, { ops.executor_call, 10 },
  { ops.stats, 3 }, { ops.error_methods, 4 }, { ops.wrong_self, 3 }, { ops.coroutine, 5 }, { ops.load, 0.25 },
  { ops.http, 0.6 }, { ops.misc, 2 }, { ops.instance, 8 },
}
local OP_TOTAL = 0
for _, o in ipairs(OPS) do OP_TOTAL = OP_TOTAL + o[2]; o[3] = OP_TOTAL end
local function pick_op()
  local x = R() * OP_TOTAL
  for _, o in ipairs(OPS) do if x <= o[3] then return o[1] end end
  return OPS[#OPS][1]
end
-- FUZZ_PROFILE=1: seconds spent per kind of operation (by the first word of its description).
if os.getenv("FUZZ_PROFILE") == "1" then
  local plain = pick_op
  local spent, n = {}, {}
  pick_op = function()
    local op = plain()
    return function()
      local t0 = funcs.clock()
      op()
      local key = (os.getenv("FUZZ_PROFILE_KEY") == "2" and current_desc:match("^%S+ %S+") or current_desc:match("^%S+") or "?"):gsub("[%c\128-\255]", "?")
      spent[key] = (spent[key] or 0) + funcs.clock() - t0
      n[key] = (n[key] or 0) + 1
    end
  end
  PROFILE = function()
    for k, v in pairs(spent) do io.stderr:write(("profile %-28s %8d ops %9.3f s\n"):format(k, n[k], v)) end
  end
end

-- ---------------------------------------------------------------------------------------
-- The run.

local shutdown_at = math.huge
if os.getenv("FUZZ_SHUTDOWN") ~= "0" and chance(0.5) then
  shutdown_at = math.floor(EXECS * (0.97 + 0.03 * R()))
end

-- Threads and resident memory of this process, sampled (leaks show as growth).
local max_threads, max_rss = 0, 0
local function sample()
  local f = io.open("/proc/self/status")
  if not f then return end
  local text = f:read("*a")
  f:close()
  local threads, rss = tonumber(text:match("Threads:%s*(%d+)")), tonumber(text:match("VmRSS:%s*(%d+)"))
  if threads and threads > max_threads then max_threads = threads end
  if rss and rss > max_rss then max_rss = rss end
end

local started = funcs.clock()
for i = 1, EXECS do
  exec_no = i
  if i % 5000 == 0 then sample() end
  if i == shutdown_at then
    current_desc = "funcs.shutdown()"
    mark(current_desc)
    check({}, pcall(funcs.shutdown))
    shut_down = true
    count("shutdowns")
  else
    pick_op()()
  end
end
local elapsed = funcs.clock() - started

-- Everything still running is left to the state's close (bounded: every call is).
current_desc = "exit"
mark("exit (closing the Lua state)")

count("executions", EXECS)
sample()
print(("@@ max_threads\t%d"):format(max_threads))
print(("@@ max_rss_kb\t%d"):format(max_rss))
count("metamethod or argument function runs", meta_hits)
count("finalizers run", gc_calls)
for k, v in pairs(counts) do print(("@@ %s\t%d"):format(k, v)) end
for k, v in pairs(messages) do print(("@@ msg %s\t%d"):format(k:gsub("[%c\128-\255]", "?"), v)) end
print(("@@ seconds\t%.3f"):format(elapsed))
if PROFILE then PROFILE() end
print(("fuzz: %d executions in %.1f s (%.0f/s), %d unclean"):format(EXECS, elapsed, EXECS / elapsed, counts.unclean or 0))
os.execute("rm -rf " .. mut_dir)
