-- GET /v1/customers/{id}/recommendations?n=10 for a random customer of the
-- model, so neither server answers from one hot cache line.
-- Usage: wrk -s random_customer.lua URL -- IDS_FILE [SEED]
local ids = {}

function init(args)
  local file = assert(io.open(args[1], "r"), "cannot open " .. tostring(args[1]))
  for line in file:lines() do
    if #line > 0 then ids[#ids + 1] = line end
  end
  file:close()
  assert(#ids > 0, "no ids in " .. args[1])
  math.randomseed(tonumber(args[2] or "1") + tonumber(tostring({}):sub(8), 16) % 1000)
end

function request()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/v1/customers/" .. id .. "/recommendations?n=10")
end
