-- wrk script: POST the payload named by $PAYLOAD as Alertmanager does.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "Alertmanager/0.25.0"
wrk.headers["Authorization"] = "Bearer bench-token"
local f = assert(io.open(os.getenv("PAYLOAD"), "rb"))
wrk.body = f:read("*a")
f:close()
