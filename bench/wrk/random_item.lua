-- GET /v1/items/{id}/similar?n=10 for a random item.
-- Usage: wrk -s random_item.lua URL -- IDS_FILE
local ids = {}

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  assert(#ids > 0, "no ids in " .. args[1])
  math.randomseed(tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  return wrk.format("GET", "/v1/items/" .. ids[math.random(#ids)] .. "/similar?n=10")
end
