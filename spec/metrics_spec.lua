-- funcs.metrics() and an http.service's `metrics` path, read by Prometheus' own parser
-- (prometheus-client from PyPI, in the project's venv: scripts/test.sh installs it).
local funcs = require("funcs")
local h = require("spec.support.helpers")

local venv_python = "build/tools/venv/bin/python"

-- Runs a Python program with `args` in the venv: its output (stderr too) and `status=N`.
local function python(program, args)
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(program)
  f:close()
  local p = io.popen(("%s %s %s 2>&1; echo status=$?"):format(venv_python, file, args))
  local out = p:read("*a")
  p:close()
  os.remove(file)
  return out
end

-- Parses `text` with prometheus_client: `family sample{labels} value` lines, sorted.
local function parse(text)
  local input = os.tmpname()
  local f = assert(io.open(input, "w"))
  f:write(text)
  f:close()
  local script = [[
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in family.samples:
        labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
        print("%s %s %s{%s} %r" % (family.name, family.type, s.name, labels, s.value))
]]
  local out = python(script, input)
  os.remove(input)
  return out
end

-- The value of `sample{labels}` in parsed output, or nil.
local function value(parsed, sample, labels)
  local line = parsed:match("\n?[%w_]+ %w+ " .. sample:gsub("%p", "%%%0") .. "{"
    .. labels:gsub("%p", "%%%0") .. "} ([^\n]+)")
  return line and tonumber(line)
end

describe("funcs.metrics", function()
  setup(function()
    assert(funcs.load("spec/fixtures/metrics"))
    assert.are.equal(42, funcs.call("met:answer", 1))
    assert.are.equal(42, funcs.call("met:answer", 1))
    assert.is_nil((funcs.call("met:answer", "one")))
    assert.is_nil((funcs.call("met:boom")))
    assert.is_nil((funcs.call("met:spin")))
  end)

  it("is Prometheus text that Prometheus' parser reads", function()
    local parsed = parse(funcs.metrics())
    assert.truthy(parsed:find("status=0", 1, true), parsed)
    assert.truthy(parsed:find("funcs_calls counter", 1, true), parsed)
    assert.truthy(parsed:find("funcs_call_duration_seconds histogram", 1, true), parsed)
  end)

  it("counts calls, failures by kind, traps by code and timeouts per function", function()
    local parsed = parse(funcs.metrics())
    assert.are.equal(2, value(parsed, "funcs_calls_total", "function=met:answer"))
    -- A bad argument fails before the call runs: not a call of the guest.
    assert.are.equal(0, value(parsed, "funcs_failures_total", "function=met:answer,kind=INTERNAL"))
    assert.are.equal(1, value(parsed, "funcs_failures_total", "function=met:boom,kind=INTERNAL"))
    assert.are.equal(1, value(parsed, "funcs_traps_total",
      "code=unreachable_code_reached,function=met:boom"))
    assert.are.equal(1, value(parsed, "funcs_timeouts_total", "function=met:spin"))
    assert.are.equal(1, value(parsed, "funcs_failures_total", "function=met:spin,kind=TIMEOUT"))
    assert.are.equal(2, value(parsed, "funcs_call_duration_seconds_count", "function=met:answer"))
    assert.are.equal(1, value(parsed, "funcs_call_duration_seconds_bucket",
      "function=met:spin,le=+Inf"))
    assert.are.equal(0, value(parsed, "funcs_call_duration_seconds_bucket",
      "function=met:spin,le=0.025"))
    assert.are.equal(0, value(parsed, "funcs_in_flight", "function=met:answer"))
  end)

  it("is served by an http.service with a `metrics` path", function()
    local addr = assert(funcs.http.start("met:service"))
    local out = python([[
import sys, urllib.request
r = urllib.request.urlopen("http://%s/metrics" % sys.argv[1])
print(r.status, r.headers["Content-Type"])
print(r.read().decode())
]], addr)
    funcs.http.stop("met:service")
    assert.truthy(out:find("^200 text/plain; version=0.0.4"), out)
    local parsed = parse(out:match("\n(.*)status=%d+%s*$"))
    assert.are.equal(2, value(parsed, "funcs_calls_total", "function=met:answer"))
  end)

  it("fails a load whose GET endpoint sits on its service's metrics path", function()
    local ok, err = h.load_yaml(funcs, [[
version: "1.0"
namespace: clash
entries:
  - name: s
    kind: http.service
    addr: "127.0.0.1:0"
    metrics: /metrics
  - name: r
    kind: http.router
    meta: {server: s}
  - name: f
    kind: function.wat
    method: f
    transport: wasi-http
    source: "(module (func (export \"f\")))"
  - name: e
    kind: http.endpoint
    meta: {router: r}
    method: GET
    path: /metrics
    func: f
]])
    assert.is_nil(ok)
    assert.are.equal("INVALID", err:kind())
    assert.truthy(tostring(err):find(
      "endpoint `clash:e` serves GET /metrics, where http.service `clash:s` serves its metrics",
      1, true), tostring(err))
  end)

  it("refuses a metrics path that is not a path", function()
    local ok, err = h.load_yaml(funcs, 'version: "1.0"\nnamespace: bad\nentries:\n  - name: s\n    kind: http.service\n'
      .. '    addr: "127.0.0.1:0"\n    metrics: metrics\n')
    assert.is_nil(ok)
    assert.are.equal("INVALID", err:kind())
    assert.truthy(tostring(err):find("metrics must be a path starting with `/`", 1, true))
  end)
end)
