-- wrk script: the same POST as the clients (empty body, Content-Length: 0,
-- Authorization: Bearer) on one fixed id, for the server's ceiling.
wrk.method = "POST"
wrk.path = "/v2/dlq/retry/id-1"
wrk.body = ""
wrk.headers["Authorization"] = "Bearer bench"
wrk.headers["User-Agent"] = "wrk-bench/4.1.0 libcurl/none"
