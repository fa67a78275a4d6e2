-- Sign-ups of distinct people, each with its own Idempotency-Key as a real client sends.
--
--   wrk -t2 -c64 -d10s --latency -s signups.lua -H 'Authorization: Bearer KEY' \
--       -H 'Content-Type: application/json' http://127.0.0.1:PORT/v1/donors -- TAG BODY_FILE
--
-- BODY_FILE is a sign-up's JSON with the text @EMAIL@ where each person's address goes.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local head, tail, tag, n

function init(args)
  tag = args[1]
  local file = io.open(args[2], "r")
  local template = file:read("*a")
  file:close()
  local at = template:find("@EMAIL@", 1, true)
  head, tail = template:sub(1, at - 1), template:sub(at + #"@EMAIL@")
  n = 0
end

function request()
  n = n + 1
  local who = string.format("%s-%d-%d", tag, tid, n)
  wrk.headers["Idempotency-Key"] = who
  return wrk.format("POST", nil, nil, head .. who .. "@signups.bench" .. tail)
end

function done(summary, latency, requests)
  io.write(string.format("PITCHIN requests=%d p50_us=%d p99_us=%d max_us=%d status_errors=%d socket_errors=%d\n",
    summary.requests, latency:percentile(50), latency:percentile(99), latency.max, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
