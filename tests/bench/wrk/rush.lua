-- A rush of distinct people booking one event: exactly TOTAL requests across all threads.
--
--   wrk -t2 -c256 -d120s --latency -s rush.lua -H 'Authorization: Bearer KEY' \
--       http://127.0.0.1:PORT/v1/events/EVENT/bookings -- TOTAL THREADS OUT_DIR
--
-- Each thread sends its share of TOTAL, then answers its connections' next request() with
-- nothing (an empty string: wrk writes no bytes and the connection waits) and stops once
-- its share is answered; wrk itself runs until -d or SIGINT, so the benchmark sends SIGINT
-- when every thread has written OUT_DIR/done-<thread>.
-- Per thread, OUT_DIR/rush-<thread>.log gets one line per request and per answer:
--   S <email> <answers this thread had received when it was sent> <wall time>
--   A <answer number> <status> <email> <booking_id> <position> <wall time>
--   E <status> <body>   (the first refusal's text, once per thread)
-- An answer names its person (the booking's payload carries the email), so the benchmark can
-- pair it with its request: latency per request, and "sent after that answer came back".
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } pitchin_timespec;
int clock_gettime(int clk_id, pitchin_timespec *tp);
]]
local clock = ffi.new("pitchin_timespec")
local function now()
  ffi.C.clock_gettime(0, clock) -- CLOCK_REALTIME: comparable with the benchmark's time.time()
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) / 1e9
end

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local quota, sent, answered, log, out_dir, told_error
-- wrk 4.1 calls the first thread's request() once before any connection, only to check that
-- it makes a well-formed request; that one is never sent, so it is not counted.
local verifying

function init(args)
  local total, nthreads = tonumber(args[1]), tonumber(args[2])
  out_dir = args[3]
  quota = math.floor(total / nthreads) + ((tid <= total % nthreads) and 1 or 0)
  sent, answered = 0, 0
  verifying = (tid == 1)
  log = io.open(string.format("%s/rush-%d.log", out_dir, tid), "w")
end

local function body(email, who)
  return string.format('{"name":"Person %s","email":"%s"}', who, email)
end

function request()
  if verifying then
    verifying = false
    return wrk.format("POST", nil, nil, body("verify@rush.example.org", "verify"))
  end
  if sent >= quota then
    return ""
  end
  sent = sent + 1
  local email = string.format("t%d.%d@rush.example.org", tid, sent)
  log:write(string.format("S %s %d %.6f\n", email, answered, now()))
  return wrk.format("POST", nil, nil, body(email, tid .. "-" .. sent))
end

function response(status, headers, text)
  answered = answered + 1
  local email = text:match('"email":%s*"([^"]*)"') or "-"
  local booking = text:match('"booking_id":%s*"([^"]*)"') or "-"
  local position = text:match('"position":%s*(%d+)') or "-"
  log:write(string.format("A %d %d %s %s %s %.6f\n", answered, status, email, booking, position, now()))
  if status >= 400 and not told_error then -- one refusal's text per thread, to say why
    told_error = true
    log:write("E " .. status .. " " .. text:gsub("[\r\n]", " ") .. "\n")
  end
  if answered == quota then
    log:close()
    local done = io.open(string.format("%s/done-%d", out_dir, tid), "w")
    done:write(string.format("%d %d\n", sent, answered))
    done:close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  -- Exact figures for the benchmark to read (wrk's own lines round them).
  io.write(string.format("PITCHIN requests=%d p50_us=%d p99_us=%d max_us=%d status_errors=%d socket_errors=%d\n",
    summary.requests, latency:percentile(50), latency:percentile(99), latency.max, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
