-- wrk script for bench/run.py; configured by environment variables:
--   BENCH_MODE     get | charge | snap | paths | bodies
--   BENCH_TAG      prefix of generated order ids (unique per phase)
--   BENCH_FILE     paths (mode paths) or JSON bodies (mode bodies), one per line
--   BENCH_PATH     request path for modes charge, snap and bodies
--   BENCH_HEADERS  extra headers, "Name: value" separated by "|"
-- done() prints one JSON line starting with "BENCH_RESULT ".

local mode = os.getenv("BENCH_MODE") or "get"
local tag = os.getenv("BENCH_TAG") or "b"
local file = os.getenv("BENCH_FILE")
local path = os.getenv("BENCH_PATH") or "/"
local extra = os.getenv("BENCH_HEADERS") or ""

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

local lines = {}
local index = 0
local n = 0
local headers = {}

function init(args)
  for pair in string.gmatch(extra, "[^|]+") do
    local name, value = string.match(pair, "^%s*([^:]+):%s*(.-)%s*$")
    if name then headers[name] = value end
  end
  if mode == "charge" or mode == "snap" or mode == "bodies" then
    headers["Content-Type"] = "application/json"
  end
  if file then
    for line in io.lines(file) do
      if #line > 0 then table.insert(lines, line) end
    end
    -- each thread starts at its own place in the list
    index = ((tid - 1) * math.floor(#lines / 8)) % math.max(#lines, 1)
  end
end

local function next_line()
  index = index % #lines + 1
  return lines[index]
end

function request()
  if mode == "charge" then
    n = n + 1
    local body = string.format('{"order_id":"%s-%d-%d","amount":10000}', tag, tid, n)
    return wrk.format("POST", path, headers, body)
  elseif mode == "snap" then
    n = n + 1
    local body = string.format(
      '{"transaction_details":{"order_id":"%s-%d-%d","gross_amount":10000}}', tag, tid, n)
    return wrk.format("POST", path, headers, body)
  elseif mode == "paths" then
    return wrk.format("GET", next_line(), headers)
  elseif mode == "bodies" then
    return wrk.format("POST", path, headers, next_line())
  end
  return wrk.format("GET", path, headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p95":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
end
