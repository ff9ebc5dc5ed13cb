-- wrk script: POST /api/v1/task-runs/states with BATCH task-run state changes per
-- request. Three consecutive requests move the same BATCH task runs Pending -> Running
-- -> Success, then the next three take new task names, so every item is a change the
-- server must write. Environment: RUN (flow run id), TOKEN (bearer), BATCH (items).
local run = os.getenv("RUN")
local token = os.getenv("TOKEN")
local batch = tonumber(os.getenv("BATCH") or "1000")
local states = { "Pending", "Running", "Success" }
local n = 0

wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"

request = function()
  local gen = math.floor(n / 3)
  local state = states[(n % 3) + 1]
  n = n + 1
  local items = {}
  for j = 1, batch do
    items[j] = string.format('{"flow_run_id":"%s","task":"t%d","state":"%s"}', run, gen * batch + j, state)
  end
  return wrk.format(nil, "/api/v1/task-runs/states", nil, "[" .. table.concat(items, ",") .. "]")
end

response = function(status, headers, body)
  if status ~= 200 then
    print("unexpected status " .. status .. ": " .. body)
    wrk.thread:stop()
  end
end
