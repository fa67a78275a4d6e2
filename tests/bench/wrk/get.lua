-- A plain GET of the URL, with exact figures printed at the end for the benchmark to read.
function done(summary, latency, requests)
  io.write(string.format("PITCHIN requests=%d p50_us=%d p99_us=%d max_us=%d status_errors=%d socket_errors=%d\n",
    summary.requests, latency:percentile(50), latency:percentile(99), latency.max, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
