-- POST /v1/events: a batch of BATCH view/cart/purchase events for random
-- customers and items. Usage: wrk -s events.lua URL -- CUSTOMERS ITEMS [BATCH]
local customers, items, batch = {}, {}, 1
local kinds = {"view", "view", "view", "cart", "purchase"}

local function load(path, into)
  for line in io.lines(path) do
    if #line > 0 then into[#into + 1] = line end
  end
  assert(#into > 0, "no ids in " .. path)
end

function init(args)
  load(args[1], customers)
  load(args[2], items)
  batch = tonumber(args[3] or "1")
  math.randomseed(tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  local parts = {}
  for i = 1, batch do
    parts[i] = string.format('{"customer_id":"%s","item_id":"%s","event":"%s"}',
      customers[math.random(#customers)], items[math.random(#items)],
      kinds[math.random(#kinds)])
  end
  local body = batch == 1 and parts[1] or ("[" .. table.concat(parts, ",") .. "]")
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"}, body)
end
