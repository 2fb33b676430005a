-- wrk against an HTTP endpoint while its registry is reloaded every 100 ms (SPEC section 13):
-- scripts/reload-load.sh for 5 s (the full run is `make stress`, 30 s). Not one request may
-- fail or get another answer, and every reload must succeed. Needs wrk (Debian's package,
-- which the script installs when run by itself): pending without it.

local function has(command)
  local r = os.execute(("command -v %s >/dev/null 2>&1"):format(command))
  return r == true or r == 0
end

describe("an endpoint under wrk while its registry is reloaded every 100 ms #slow #http", function()
  it("answers every request 200 with the expected body, with no socket error and no failed reload", function()
    if not has("wrk") then
      pending("wrk is not installed (apt-get install wrk; scripts/reload-load.sh installs it)")
      return
    end
    local lua = os.getenv("FUNCS_LUA") or "lua5.4"
    local p = assert(io.popen(("RELOAD_CPATH=%q RELOAD_LUA=%s RELOAD_MIN=20 scripts/reload-load.sh 5 2>&1; echo status=$?")
      :format(package.cpath, lua)))
    local out = p:read("*a")
    p:close()
    local line = out:match("reload%-load: (requests=[^\n]*)")
    assert.is_not_nil(line, out)
    local function field(name) return tonumber(line:match(name .. "=(%d+)")) end
    assert.are.equal(0, field("non2xx"), out)
    for _, e in ipairs({ "connect", "read", "write", "timeout" }) do
      assert.are.equal(0, field(e), e .. " errors\n" .. out)
    end
    assert.are.equal(0, field("unexpected"), out)
    assert.are.equal(0, field("reload_failures"), out)
    assert.is_true(field("requests") >= 300, out)
    assert.are.equal(field("requests"), field("expected_body"), out)
    assert.is_true(field("reloads") >= 20, out)
    assert.are.equal("0", out:match("status=(%d+)%s*$"), out)
  end)
end)
