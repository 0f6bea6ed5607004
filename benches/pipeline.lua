-- wrk's classic pipelining script (wrk/scripts/pipeline.lua): `init` builds
-- DEPTH requests concatenated with wrk.format(), `request` returns them all,
-- so each connection writes DEPTH requests at once and reads DEPTH responses.
-- wrk -t1 -c64 -d10s -s benches/pipeline.lua http://127.0.0.1:PORT/ -- 16
-- (benches/compare.py --pipeline 1,16 runs it against `locusta --pipeline N`).

init = function(args)
   local depth = tonumber(args[1]) or 1
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format()
   end
   req = table.concat(r)
end

request = function()
   return req
end
