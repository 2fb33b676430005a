-- The Lua C API in a long-lived host (issue 26): no Lua error may cross a Rust
-- `catch_unwind` or wasmtime's frames (LuaJIT raises errors as C++ exceptions: Rust aborts on
-- them; Lua 5.1 jumps over whatever the frames own), and no script, even with the `debug`
-- library, may make funcs read memory it did not make. Every case runs in a child
-- interpreter (the one this suite runs under: FUNCS_LUA), so an abort fails the test
-- instead of killing the runner.
local h = require("spec.support.helpers")

-- Runs `chunk` in a child interpreter; asserts it ended normally and printed no panic.
local function survives(chunk)
  local status, out = h.run_lua(chunk)
  assert.are.equal(0, status, out)
  assert.is_nil(out:find("panicked", 1, true), out)
  assert.is_nil(out:find("fatal runtime error", 1, true), out)
  return out
end

describe("a runaway recursion that calls funcs", function()
  -- Each level calls funcs before it recurses, so the calls meet the stack near its end.
  local function recursion(call)
    return survives(([[
      local funcs = require("funcs")
      assert(funcs.load("examples/app"))
      assert(funcs.load("spec/fixtures/echo"))
      local calls = 0
      local function deep(n)
        %s
        calls = calls + 1
        return deep(n + 1) + 1
      end
      for round = 1, 3 do
        local ok, err = pcall(deep, 1)
        print("round", round, ok, type(err))
      end
      -- The interpreter and funcs still work.
      print("after", funcs.call("examples:greet", "again"), calls > 100)
    ]]):format(call))
  end

  it("ends in a catchable error when each level calls a string-returning entry", function()
    local out = recursion([[assert(funcs.call("examples:greet", "x") == "Hello, x!")]])
    for round = 1, 3 do
      assert.truthy(out:find("round\t" .. round .. "\tfalse\t", 1, true), out)
    end
    assert.truthy(out:find("after\tHello, again!\ttrue", 1, true), out)
  end)

  it("ends in a catchable error when each level passes a table to the direct path", function()
    local out = recursion([[
      local r = funcs.call("echo:list_string", { "a", "b", "c" })
      assert(r[3] == "c")
      local u = funcs.call("echo:users", { { id = 2, name = "bob", tags = { "t" }, color = 0,
        perms = 0, shapes = {}, score = { err = "no" }, raw = {}, pair = { 0, 0 }, initial = 65 } })
      assert(u[1].name == "bob")
    ]])
    for round = 1, 3 do
      assert.truthy(out:find("round\t" .. round .. "\tfalse\t", 1, true), out)
    end
    assert.truthy(out:find("after\tHello, again!\ttrue", 1, true), out)
  end)

  it("ends in a catchable error through funcs.async and an executor", function()
    local out = recursion([[
      local f = assert(funcs.async("echo:list_string", { "a", "b" }))
      assert(f:wait()[2] == "b")
      assert(funcs.new():call("examples:greet", "y") == "Hello, y!")
    ]])
    for round = 1, 3 do
      assert.truthy(out:find("round\t" .. round .. "\tfalse\t", 1, true), out)
    end
    assert.truthy(out:find("after\tHello, again!\ttrue", 1, true), out)
  end)
end)

describe("a result with more distinct names than the Lua stack holds", function()
  it("comes back whole on every path (9,000 enum cases in one list)", function()
    local out = survives([[
      local funcs = require("funcs")
      local n = 9000
      local dir = os.tmpname()
      os.remove(dir)
      os.execute("mkdir -p " .. dir)
      local cases = {}
      for i = 0, n - 1 do cases[#cases + 1] = '"n' .. i .. '"' end
      local wat = assert(io.open(dir .. "/names.wat", "w"))
      wat:write(([=[
        (component
          (core module $m
            (memory (export "memory") 1)
            (func (export "names") (result i32)
              (local $i i32)
              (loop $each
                (i32.store16 (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 1)))
                  (local.get $i))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $each (i32.lt_u (local.get $i) (i32.const %d))))
              (i32.store (i32.const 0) (i32.const 1024))
              (i32.store (i32.const 4) (i32.const %d))
              (i32.const 0)))
          (core instance $i (instantiate $m))
          (alias core export $i "memory" (core memory $mem))
          (type $name' (enum %s))
          (export $name "name" (type $name'))
          (func (export "names") (result (list $name))
            (canon lift (core func $i "names") (memory $mem))))
      ]=]):format(n, n, table.concat(cases, " ")))
      wat:close()
      local yaml = assert(io.open(dir .. "/_index.yaml", "w"))
      yaml:write([=[
namespace: many
entries:
  - { name: names, kind: function.wat, source: file://names.wat, method: names }
]=])
      yaml:close()
      assert(funcs.load(dir))
      local function check(label, r, err)
        assert(r, tostring(err))
        local ok = #r == n
        for i = 1, n do ok = ok and r[i] == "n" .. (i - 1) end
        print(label, ok)
      end
      check("call", funcs.call("many:names"))
      check("executor", funcs.new():call("many:names"))
      local f = assert(funcs.async("many:names"))
      check("async", f:wait())
      os.execute("rm -rf " .. dir)
    ]])
    assert.truthy(out:find("call\ttrue", 1, true), out)
    assert.truthy(out:find("executor\ttrue", 1, true), out)
    assert.truthy(out:find("async\ttrue", 1, true), out)
  end)
end)

describe("funcs.call's upvalues in the hands of the debug library", function()
  it("are checked: any value in their place gives a Lua error or the general path", function()
    local out = survives([[
      local funcs = require("funcs")
      assert(funcs.load("examples/app"))
      local call = funcs.call
      local originals = {}
      local n = 0
      while true do
        local name, value = debug.getupvalue(call, n + 1)
        if name == nil then break end
        n = n + 1
        originals[n] = value
      end
      print("upvalues", n)
      local strangers = { io.stdout, 1, "x", {}, true, print, coroutine.create(function() end),
        function() return true end }
      for i = 1, n do strangers[#strangers + 1] = originals[i] end
      local calls = 0
      for k = 1, n do
        for _, v in ipairs(strangers) do
          debug.setupvalue(call, k, v)
          pcall(call, "examples:greet", "x")
          pcall(call, "examples:answer")
          pcall(call, "examples:greet", 1)
          calls = calls + 1
        end
        debug.setupvalue(call, k, originals[k])
      end
      -- The internal functions, called directly with anything.
      for k = 1, n do
        if type(originals[k]) == "function" and originals[k] ~= call then
          for _, v in ipairs(strangers) do
            pcall(originals[k], v)
            pcall(originals[k])
          end
        end
        local mt = debug.getmetatable(originals[k])
        if mt and mt.__gc then
          for _, v in ipairs(strangers) do
            if v ~= originals[k] then pcall(mt.__gc, v) end
          end
        end
      end
      print("tried", calls)
      print("after", call("examples:greet", "again"))
    ]])
    -- Lua 5.1's debug library does not touch a C function's upvalues.
    local n = tonumber(out:match("upvalues\t(%d+)"))
    assert.is_true(n == 4 or (n == 0 and _VERSION == "Lua 5.1" and not jit), out)
    assert.truthy(out:find("after\tHello, again!", 1, true), out)
  end)

  it("are checked in inst.call and handle methods too, swapped between them included", function()
    local out = survives([[
      local funcs = require("funcs")
      assert(funcs.load("build/guests/c-res"))
      local inst = assert(funcs.instantiate("cres:counters"))
      local c = assert(inst:resource("counter").new(4))
      local icall, get = debug.getmetatable(inst).__index.call, c.get
      local function upvalues(f)
        local t = {}
        while debug.getupvalue(f, #t + 1) do t[#t + 1] = select(2, debug.getupvalue(f, #t + 1)) end
        return t
      end
      local mine = { [icall] = upvalues(icall), [get] = upvalues(get), [funcs.call] = upvalues(funcs.call) }
      local strangers = { io.stdout, 1, "x", {}, print, inst, c }
      for _, ups in pairs(mine) do
        for _, v in ipairs(ups) do strangers[#strangers + 1] = v end
      end
      local tried = 0
      for _, f in ipairs({ icall, get }) do
        for k = 1, #mine[f] do
          for _, v in ipairs(strangers) do
            debug.setupvalue(f, k, v)
            pcall(icall, inst, "get-total")
            pcall(get, c)
            pcall(get, inst)
            pcall(icall, c, "get-total")
            tried = tried + 1
          end
          debug.setupvalue(f, k, mine[f][k])
        end
      end
      print("upvalues", #mine[icall], #mine[get], tried)
      print("after", inst:call("get-total"), c:get())
    ]])
    local a, b = out:match("upvalues\t(%d+)\t(%d+)")
    assert.is_true((a == "4" and b == "4") or (a == "0" and _VERSION == "Lua 5.1" and not jit), out)
    assert.truthy(out:find("after\t0\t4", 1, true), out)
  end)

  it("keep inst.call on the direct path for the instances of a module loaded twice", function()
    local out = survives([[
      local funcs = require("funcs")
      assert(funcs.load("build/guests/c-res"))
      local a = assert(funcs.instantiate("cres:counters"))
      package.loaded.funcs = nil
      local again = require("funcs")
      assert(again ~= funcs)
      assert(again.load("build/guests/c-res"))
      local b = assert(again.instantiate("cres:counters"))
      local c = b:resource("counter").new(2)
      c:increment(3)
      local call = debug.getmetatable(b).__index.call
      local n = 0
      while debug.getupvalue(call, n + 1) do n = n + 1 end
      print("calls", a:call("get-total"), b:call("get-total"), c:get(), a.call(b, "get-total"), n)
      -- the general path, from either load
      print("general", select(2, b:call("nope")):kind(), select(2, a:call("nope")):kind())
    ]])
    assert.truthy(out:find("general\tINVALID\tINVALID", 1, true), out)
    assert.truthy(out:find("calls\t0\t3\t5\t3\t", 1, true), out)
    local n = tonumber(out:match("calls\t0\t3\t5\t3\t(%d+)"))
    assert.is_true(n == 4 or (n == 0 and _VERSION == "Lua 5.1" and not jit), out)
  end)

  it("is safe to the value the issue named: io.stdout for the state", function()
    local out = survives([[
      local funcs = require("funcs")
      assert(funcs.load("examples/app"))
      debug.setupvalue(funcs.call, 4, io.stdout)
      print("call", pcall(funcs.call, "examples:greet", "x"))
    ]])
    assert.truthy(out:find("call\ttrue\tHello, x!", 1, true), out)
  end)
end)

describe("the metatables of funcs' userdata given to other userdata", function()
  it("make their methods and finalizers refuse them (a Lua error, never a crash)", function()
    local out = survives([[
      local funcs = require("funcs")
      assert(funcs.load("examples/app"))
      local f = assert(funcs.async("examples:greet", "x"))
      local _, err = funcs.call("nope:x")
      local objects = { funcs.new(), f, err, funcs.new():with_options({ timeout = 10 }) }
      local refused, tried = 0, 0
      for _, object in ipairs(objects) do
        local mt = debug.getmetatable(object)
        local strangers = { io.open("/dev/null"), io.tmpfile() }
        if newproxy then strangers[#strangers + 1] = newproxy(true) end
        for _, u in ipairs(strangers) do
          debug.setmetatable(u, mt)
          -- an executor's __index is a function: its own `call` (user value) first, then
          -- the shared methods (its upvalue)
          local methods = mt.__index
          if type(methods) == "function" then
            -- (Lua 5.1's debug library does not reach a C function's upvalues)
            local index = methods
            methods = {}
            for _, k in ipairs({ "call", "async", "with_options" }) do methods[k] = index(u, k) end
            tried = tried + 1
            local ok, e = pcall(function() return u:call("examples:greet", "x") end)
            if not ok and tostring(e):find("not one", 1, true) then refused = refused + 1 end
          end
          for name, method in pairs(methods) do
            tried = tried + 1
            local ok, e = pcall(method, u, "examples:greet", "x")
            if not ok and tostring(e):find("not one", 1, true) then refused = refused + 1 end
          end
          if mt.__tostring then
            tried = tried + 1
            if not pcall(tostring, u) then refused = refused + 1 end
          end
        end
        strangers = nil
        collectgarbage()
        collectgarbage()
      end
      print("refused", refused == tried, tried)
      -- The real objects still work.
      print("after", f:wait(), err:kind(), objects[1]:call("examples:greet", "y"))
    ]])
    assert.truthy(out:find("refused\ttrue", 1, true), out)
    assert.truthy(out:find("after\tHello, x!\tNOT_FOUND\tHello, y!", 1, true), out)
  end)
end)

describe("finalizers that call funcs", function()
  it("never crash, even when they interrupt another call of funcs", function()
    -- Lua 5.1 runs finalizers as mlua's internal calls return: there a call of funcs from a
    -- finalizer that interrupts another is refused (see lua/guard.rs); elsewhere it runs.
    local out = survives([[
      local funcs = require("funcs")
      assert(funcs.load("spec/fixtures/echo"))
      local ran, refused, other = 0, 0, 0
      local function fin()
        local ok, e = pcall(funcs.engine)
        if ok then ran = ran + 1
        elseif tostring(e):find("interrupts a call of funcs", 1, true) then refused = refused + 1
        else other = other + 1 end
        pcall(funcs.stats)
      end
      for i = 1, 30000 do
        -- Userdata on 5.1 and LuaJIT (their tables have no finalizers), tables elsewhere.
        if newproxy then
          getmetatable(newproxy(true)).__gc = fin
        else
          setmetatable({}, { __gc = fin })
        end
        local s = { "v" .. i, "w" .. i }
        if i % 100 == 0 then assert(funcs.stats()) end
      end
      collectgarbage()
      collectgarbage()
      print("finalizers", ran > 0, other, refused >= 0)
      print("after", funcs.call("echo:u32", 7))
    ]])
    assert.truthy(out:find("finalizers\ttrue\t0\ttrue", 1, true), out)
    assert.truthy(out:find("after\t7", 1, true), out)
  end)
end)

describe("the metatables of instances and resource handles", function()
  it("are refused on other userdata, funcs' own of another type included", function()
    local out = survives([[
      local funcs = require("funcs")
      assert(funcs.load("build/guests/c-res"))
      local inst = assert(funcs.instantiate("cres:counters"))
      local c = assert(inst:resource("counter").new(3))
      local _, err = funcs.call("nope:x")
      local others = { funcs.new(), err, io.open("/dev/null"), inst, c }
      local refused, tried = 0, 0
      for _, object in ipairs({ inst, c }) do
        local mt = debug.getmetatable(object)
        for _, u in ipairs({ funcs.new(), (select(2, funcs.call("nope:y"))), io.tmpfile(),
                             inst:resource("counter").new(1), assert(funcs.instantiate("cres:counters")) }) do
          if debug.getmetatable(u) ~= mt then
            debug.setmetatable(u, mt)
            -- an instance's methods are in a table; a handle's come from its __index
            local keys = { "get", "drop", "increment" }
            if type(mt.__index) == "table" then
              keys = {}
              for k in pairs(mt.__index) do keys[#keys + 1] = k end
            end
            for _, key in ipairs(keys) do
              tried = tried + 1
              -- a handle's __index reads the methods in the handle's user value: another
              -- userdata has none (nil), or is refused by the method it was given
              local ok, e = pcall(function()
                local f = u[key]
                if f == nil and type(mt.__index) == "function" then error("no method") end
                return f(u, "get-total")
              end)
              e = tostring(e)
              if not ok and (e:find("not one", 1, true) or e:find("no method", 1, true)
                             or e:find("a resource handle expected", 1, true)) then
                refused = refused + 1
              end
            end
            -- given a handle's methods as its user value, it is still refused
            local getuv = debug.getuservalue or debug.getfenv
            local setuv = debug.setuservalue or debug.setfenv
            if type(mt.__index) == "function" then
              setuv(u, (getuv(c)))
              tried = tried + 1
              -- (a userdata with no user value slot keeps none: no method)
              local ok, e = pcall(function() return (u.get or error("no method"))(u) end)
              if not ok and (tostring(e):find("a resource handle expected", 1, true)
                             or tostring(e):find("no method", 1, true)) then
                refused = refused + 1
              end
            end
            tried = tried + 1
            if not pcall(tostring, u) then refused = refused + 1 end
            -- as an argument: not a handle (a Lua error when it carries the instance's own
            -- metatable, as for any argument of a method that does)
            local ok, v, e = pcall(inst.call, inst, "peek", u)
            print("as argument", (not ok) or (v == nil and e:kind() == "INVALID"))
          end
        end
        collectgarbage()
        collectgarbage()
      end
      print("refused", refused == tried, tried)
      print("after", c:get(), inst:call("get-total"))
    ]])
    assert.truthy(out:find("refused\ttrue", 1, true), out)
    assert.is_nil(out:find("as argument\tfalse", 1, true), out)
    assert.truthy(out:find("after\t3\t0", 1, true), out)
  end)

  it("survive finalizers that use instances and handles while they run", function()
    local out = survives([[
      local funcs = require("funcs")
      assert(funcs.load("build/guests/c-res"))
      local inst = assert(funcs.instantiate("cres:counters"))
      local Counter = inst:resource("counter")
      local keep = Counter.new(1)
      local ran, failed = 0, 0
      local function fin()
        local ok, v = pcall(function() return keep:get() end)
        if ok and v == 1 then ran = ran + 1 else failed = failed + 1 end
        pcall(inst.call, inst, "live")
        pcall(function() Counter.new(2):drop() end)
      end
      for i = 1, 20000 do
        if newproxy then
          getmetatable(newproxy(true)).__gc = fin
        else
          setmetatable({}, { __gc = fin })
        end
        if i % 50 == 0 then Counter.new(i) end
        if i % 100 == 0 then inst:call("get-total") end
      end
      collectgarbage()
      collectgarbage()
      print("finalizers", ran > 0)
      print("after", keep:get(), inst:call("drops") > 0)
    ]])
    assert.truthy(out:find("finalizers\ttrue", 1, true), out)
    assert.truthy(out:find("after\t1\ttrue", 1, true), out)
  end)
end)
