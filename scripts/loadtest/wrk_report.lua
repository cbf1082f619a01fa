-- wrk script for the load scenarios: a header on every request (the API key,
-- from $LOADTEST_KEY), statuses counted per second and per class in response(),
-- and one JSON line at the end (done()) with wrk's own latency percentiles.
-- Per-second buckets use os.time(): whole seconds of the wall clock.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local key = os.getenv("LOADTEST_KEY")
  if key and key ~= "" then
    wrk.headers["X-API-Key"] = key
  end
  sec_n, sec_e, sec_rl = {}, {}, {}
  classes = { ["2xx"] = 0, ["3xx"] = 0, ["4xx"] = 0, ["429"] = 0, ["5xx"] = 0 }
end

function response(status, headers, body)
  local c
  if status == 429 then c = "429" else c = tostring(math.floor(status / 100)) .. "xx" end
  classes[c] = (classes[c] or 0) + 1
  -- string keys: wrk copies tables between Lua states with lua_tostring on
  -- each key, which breaks lua_next on number keys
  -- (flat tables only: nested ones crash wrk's copy between threads)
  local s = tostring(os.time())
  sec_n[s] = (sec_n[s] or 0) + 1
  if status == 429 then sec_rl[s] = (sec_rl[s] or 0) + 1
  elseif status >= 400 then sec_e[s] = (sec_e[s] or 0) + 1 end
end

function done(summary, latency, requests)
  local total = { ["2xx"] = 0, ["3xx"] = 0, ["4xx"] = 0, ["429"] = 0, ["5xx"] = 0 }
  local seconds = {}
  for _, t in ipairs(threads) do
    local c = t:get("classes")
    for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
    local n, e, rl = t:get("sec_n"), t:get("sec_e"), t:get("sec_rl")
    for s, v in pairs(n) do
      local acc = seconds[s]
      if acc == nil then acc = { n = 0, e = 0, rl = 0 }; seconds[s] = acc end
      acc.n = acc.n + v; acc.e = acc.e + (e[s] or 0); acc.rl = acc.rl + (rl[s] or 0)
    end
  end
  local sec = {}
  for s, b in pairs(seconds) do
    table.insert(sec, string.format('[%d,%d,%d,%d]', tonumber(s), b.n, b.e, b.rl))
  end
  local e = summary.errors
  io.write(string.format(
    'LOADTEST_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d},' ..
    '"classes":{"2xx":%d,"3xx":%d,"4xx":%d,"429":%d,"5xx":%d},' ..
    '"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,"seconds":[%s]}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    total["2xx"], total["3xx"], total["4xx"], total["429"], total["5xx"],
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    table.concat(sec, ",")))
end
