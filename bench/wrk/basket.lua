-- POST /v1/recommendations with a basket of 3 random items.
-- Usage: wrk -s basket.lua URL -- ITEM_IDS_FILE
local ids = {}

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  assert(#ids > 0, "no ids in " .. args[1])
  math.randomseed(tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  local a, b, c = ids[math.random(#ids)], ids[math.random(#ids)], ids[math.random(#ids)]
  local body = string.format('{"items":["%s","%s","%s"],"n":10}', a, b, c)
  return wrk.format("POST", "/v1/recommendations", {["Content-Type"] = "application/json"}, body)
end
