-- replay.lua: wrk replays a pool of pre-signed requests, each as its own delivery.
--
-- Script arguments (after `--` on wrk's command line):
--   1  pool file: records "head \1 tail" separated by "\0"; head ends with
--      "Idempotency-Key: " and tail holds the rest of the request
--   2  run tag, unique per run, so no key repeats across runs
--
-- wrk has no HMAC, so signatures are made beforehand; the key is not signed, so
-- each request gets a fresh one here and no delivery is deduplicated as a repeat.
-- done() prints one line, "BENCH {json}", for the driver to read.

local heads, tails = {}, {}
local count, counter = 0, 0
local prefix = ""
local next_thread = 0

function setup(thread)
    next_thread = next_thread + 1
    thread:set("thread_id", next_thread)
end

function init(args)
    local file = assert(io.open(args[1], "rb"))
    local data = file:read("*a")
    file:close()
    local at = 1
    while true do
        local stop = string.find(data, "\0", at, true)
        if not stop then break end
        local split = string.find(data, "\1", at, true)
        count = count + 1
        heads[count] = string.sub(data, at, split - 1)
        tails[count] = string.sub(data, split + 1, stop - 1)
        at = stop + 1
    end
    prefix = args[2] .. "-" .. tostring(thread_id or 0) .. "-"
end

function request()
    counter = counter + 1
    local i = counter % count + 1
    return heads[i] .. prefix .. counter .. tails[i]
end

function done(summary, latency, requests)
    local errors = summary.errors
    io.write(string.format(
        'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
        '"max_us": %d, "socket_errors": %d, "non_2xx": %d}\n',
        summary.requests, summary.duration,
        latency:percentile(50), latency:percentile(99), latency.max,
        errors.connect + errors.read + errors.write + errors.timeout,
        errors.status))
end
