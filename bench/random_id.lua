-- wrk script for bench/read.sh: every request is GET /users/<id> with the id drawn
-- uniformly from [1, N]. N is the first script argument (wrk URL -s random_id.lua -- N),
-- default 1000000.
local n = 1000000

function init(args)
    if args[1] ~= nil then
        n = tonumber(args[1])
    end
    math.randomseed(os.time())
end

function request()
    return wrk.format("GET", "/users/" .. math.random(1, n))
end
