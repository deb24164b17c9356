-- wrk script for scripts/bench. Arguments: <entries file> <case>.
-- Each line of the entries file is "key,document_id,user_id" for one tenant,
-- so requests spread over many tenants.
local entries = {}
local case

function init(args)
  for line in io.lines(args[1]) do
    local key, document_id, user_id = line:match("([^,]+),([^,]+),([^,]+)")
    entries[#entries + 1] = { key, document_id, user_id }
  end
  case = args[2]
end

function request()
  local e = entries[math.random(#entries)]
  local headers = { ["Authorization"] = "Bearer " .. e[1] }
  if case == "get" then
    return wrk.format("GET", "/v1/documents/" .. e[2], headers)
  elseif case == "list" then
    return wrk.format("GET", "/v1/documents?limit=20", headers)
  elseif case == "audit" then
    return wrk.format("GET", "/v1/audit-logs?limit=50", headers)
  end
  headers["Content-Type"] = "application/json"
  local body = '{"user_id":"' .. e[3] .. '","title":"bench","content_hash":"' .. string.rep("ab", 32) .. '"}'
  return wrk.format("POST", "/v1/documents", headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
