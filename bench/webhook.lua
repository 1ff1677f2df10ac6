-- wrk script for bench/webhook.py: POSTs pre-built, signed, AES-encrypted WeChat pushes.
-- The file (argument 1) holds one request a line, "path<TAB>body". Thread k of n (argument 2)
-- takes lines k, k+n, k+2n, … so no two threads send the same MsgId; each thread counts how
-- often it ran out and started its list again (then dedup answers the repeats).
-- Usage: wrk -s bench/webhook.lua URL -- FILE THREADS

local threads = {}
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("id", next_id)
   table.insert(threads, thread)
end

local requests = {}
local index = 0
wraps = 0

function init(args)
   local file, count = args[1], tonumber(args[2])
   local line_no = 0
   for line in io.lines(file) do
      if line_no % count == id - 1 then
         local tab = line:find("\t", 1, true)
         local headers = { ["Content-Type"] = "text/xml" }
         table.insert(requests, wrk.format("POST", line:sub(1, tab - 1), headers, line:sub(tab + 1)))
      end
      line_no = line_no + 1
   end
end

function request()
   index = index + 1
   if index > #requests then
      index = 1
      wraps = wraps + 1
   end
   return requests[index]
end

function done(summary, latency, _)
   local wrapped = 0
   for _, thread in ipairs(threads) do
      wrapped = wrapped + thread:get("wraps")
   end
   local e = summary.errors
   -- One machine-readable line; latency in microseconds.
   io.write(string.format(
      "RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d "
         .. "connect=%d read=%d write=%d status=%d timeout=%d wraps=%d\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout,
      wrapped))
end
