-- The bench's table: medians of the rounds, ratios to the reference measured
-- in the same run, the targets, and the same as Markdown (build/bench/results.md,
-- which bench/docs.lua writes into docs/benchmarks.md).
-- Usage: lua5.4 bench/report.lua RAW_TSV META_TXT RESULTS_MD
-- Exits 1 when a contender broke (an ERR row), else 0 whatever the targets.
local raw_path, meta_path, md_path = arg[1], arg[2], arg[3]

local meta = {}
for line in io.lines(meta_path) do
  local k, v = line:match("^([%w_]+):%s*(.*)$")
  if k then meta[k] = v end
end
local conc = meta.conc or "64"
local ncpu = tonumber(meta.ncpu_all) or tonumber(meta.nproc) or 1
-- A run is quiet when other processes took less than this share of the
-- machine's CPU meanwhile; quiet rounds are preferred where there are any.
local QUIET = 0.10

-- key -> list of per-round records (each with its round number)
local runs = {}
for line in io.lines(raw_path) do
  local key, round, rest = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
  if key then
    local r = { round = tonumber(round) }
    for k, v in rest:gmatch("([%w_]+)=(%S+)") do r[k] = v end
    if r.status == "ok" then
      r.calls = tonumber(r.calls)
      r.rate = r.calls / tonumber(r.wall)
      r.cpu_us = tonumber(r.cpu) / r.calls * 1e6
      r.rss = tonumber(r.rss_kb) / 1024
      r.elapsed = tonumber(r.elapsed) or 0
      r.foreign = tonumber(r.foreign) or 0
      r.share = r.elapsed > 0 and math.min(1, r.foreign / (r.elapsed * ncpu)) or 0
      r.quiet = r.share < QUIET
      r.median_us = tonumber(r.median_us)
      r.p90_us = tonumber(r.p90_us)
      r.conns = tonumber(r.conns)
    end
    runs[key] = runs[key] or {}
    table.insert(runs[key], r)
  end
end

local function median(t)
  table.sort(t)
  local n = #t
  if n == 0 then return nil end
  if n % 2 == 1 then return t[(n + 1) // 2] end
  return (t[n // 2] + t[n // 2 + 1]) / 2
end

-- figures of one contender: {status = "ok"|"na"|"err"|"missing", rate, cpu_us,
-- rss (medians of its quiet rounds, or of all when none was quiet), by_round,
-- quiet_n, rounds, proto, n}
local function figures(key)
  local list = runs[key]
  if not list or #list == 0 then return { status = "missing" } end
  local by_round, quiet_n, proto, n = {}, 0, nil, nil
  for _, r in ipairs(list) do
    if r.status == "err" then return { status = "err" } end
    if r.status == "na" then return { status = "na" } end
    by_round[r.round] = r
    if r.quiet then quiet_n = quiet_n + 1 end
    proto = proto or r.proto
    n = n or r.calls
  end
  local rates, cpus, rsss, meds, p90s = {}, {}, {}, {}, {}
  for _, r in ipairs(list) do
    if r.quiet or quiet_n == 0 then
      rates[#rates + 1] = r.rate
      cpus[#cpus + 1] = r.cpu_us
      rsss[#rsss + 1] = r.rss
      meds[#meds + 1] = r.median_us
      p90s[#p90s + 1] = r.p90_us
    end
  end
  return { status = "ok", rate = median(rates), cpu_us = median(cpus), rss = median(rsss),
           median_us = median(meds), p90_us = median(p90s),
           by_round = by_round, quiet_n = quiet_n, rounds = #list, proto = proto, n = n }
end

local C = conc
local rows = {
  { "qstash dlq_retry seq, HTTP", "seq_http", "raw_seq_http", "ts_seq_http" },
  { "raw libcurl easy loop, HTTP", "raw_seq_http" },
  { "luasocket keep-alive loop, HTTP", "luasocket_http", "raw_seq_http" },
  { "TypeScript SDK seq, HTTP", "ts_seq_http", "raw_seq_http" },
  { "qstash dlq_retry seq, HTTPS", "seq_https", "raw_seq_h1_https", "ts_seq_https" },
  { "raw libcurl easy loop (HTTP/1.1), HTTPS", "raw_seq_h1_https" },
  { "raw libcurl easy loop (libcurl's default), HTTPS", "raw_seq_https", "raw_seq_h1_https" },
  { "luasocket+luasec loop, HTTPS", "luasocket_https", "raw_seq_h1_https" },
  { "TypeScript SDK seq, HTTPS", "ts_seq_https", "raw_seq_https" },
  { "qstash dlq_retry_each @" .. C .. ", HTTP", "each_http", "raw_multi_http", "ts_multi_http" },
  { "raw libcurl multi @" .. C .. ", HTTP", "raw_multi_http" },
  { "TypeScript SDK @" .. C .. ", HTTP", "ts_multi_http", "raw_multi_http" },
  { "qstash dlq_retry_each @" .. C .. ", HTTPS", "each_https", "raw_multi_https", "ts_multi_https" },
  { "raw libcurl multi @" .. C .. ", HTTPS", "raw_multi_https" },
  { "TypeScript SDK @" .. C .. ", HTTPS", "ts_multi_https", "raw_multi_https" },
  { "wrk -c1 (server ceiling), HTTP", "wrk1_http" },
  { "wrk -c" .. C .. " (server ceiling), HTTP", "wrk_multi_http" },
  { "wrk -c1 (server ceiling), HTTPS", "wrk1_https" },
  { "wrk -c" .. C .. " (server ceiling), HTTPS", "wrk_multi_https" },
  { "20 ms: qstash dlq_retry seq", "lat_seq" },
  { "20 ms: qstash dlq_retry_each @" .. C, "lat_each", "lat_seq" },
  { "20 ms: raw libcurl multi @" .. C, "lat_raw_multi", "lat_seq" },
  -- publishing: calls/s is messages per second
  { "qstash publish seq, HTTP", "pub_seq_http" },
  { "qstash batch of 100, HTTP", "batch_http", "pub_seq_http" },
  { "qstash dlq_retry_each @" .. C .. " (batch rows), HTTP", "batch_each_http", "pub_seq_http" },
  -- inside a host's event loop, against dlq_retry_each at the same concurrency
  { "dlq_retry_each @" .. C .. " (loop rows), 0 ms", "loop_each_0" },
  { "qstash.loop.luv @" .. C .. ", 0 ms", "loop_luv_0", "loop_each_0" },
  { "qstash.loop.cqueues @" .. C .. ", 0 ms", "loop_cq_0", "loop_each_0" },
  { "dlq_retry_each @" .. C .. " (loop rows), 20 ms", "loop_each_20" },
  { "qstash.loop.luv @" .. C .. ", 20 ms", "loop_luv_20", "loop_each_20" },
  { "qstash.loop.cqueues @" .. C .. ", 20 ms", "loop_cq_20", "loop_each_20" },
  -- nginx: handlers in one worker making the same retry, under wrk
  { "nginx 0 ms -c64: hand-written cosocket handler", "ngx_hand_0_64" },
  { "nginx 0 ms -c64: qstash.resty.http", "ngx_http_0_64", "ngx_hand_0_64" },
  { "nginx 0 ms -c64: qstash.resty", "ngx_resty_0_64", "ngx_hand_0_64" },
  { "nginx 0 ms -c256: hand-written cosocket handler", "ngx_hand_0_256" },
  { "nginx 0 ms -c256: qstash.resty.http", "ngx_http_0_256", "ngx_hand_0_256" },
  { "nginx 0 ms -c256: qstash.resty", "ngx_resty_0_256", "ngx_hand_0_256" },
  { "nginx 20 ms -c64: hand-written cosocket handler", "ngx_hand_20_64" },
  { "nginx 20 ms -c64: qstash.resty.http", "ngx_http_20_64", "ngx_hand_20_64" },
  { "nginx 20 ms -c64: qstash.resty", "ngx_resty_20_64", "ngx_hand_20_64" },
  { "nginx 20 ms -c256: hand-written cosocket handler", "ngx_hand_20_256" },
  { "nginx 20 ms -c256: qstash.resty.http", "ngx_http_20_256", "ngx_hand_20_256" },
  { "nginx 20 ms -c256: qstash.resty", "ngx_resty_20_256", "ngx_hand_20_256" },
  { "qstash-dlq stats, emulator", "cli_stats", "ref_stats" },
  { "dlq_list pages (module alone), emulator", "ref_stats" },
  { "qstash-dlq retry --label, emulator", "cli_retry", "ref_retry" },
  { "dlq_list + dlq_retry_many (module alone), emulator", "ref_retry" },
}
local short = {
  raw_seq_http = "raw seq HTTP", raw_seq_https = "raw seq HTTPS", raw_seq_h1_https = "raw seq HTTPS 1.1",
  raw_multi_http = "raw multi HTTP", raw_multi_https = "raw multi HTTPS",
  ts_seq_http = "TS seq HTTP", ts_seq_https = "TS seq HTTPS",
  ts_multi_http = "TS @" .. C .. " HTTP", ts_multi_https = "TS @" .. C .. " HTTPS",
  lat_seq = "20 ms seq",
  pub_seq_http = "publish seq HTTP",
  loop_each_0 = "each 0 ms", loop_each_20 = "each 20 ms",
  ngx_hand_0_64 = "hand 0 ms -c64", ngx_hand_0_256 = "hand 0 ms -c256",
  ngx_hand_20_64 = "hand 20 ms -c64", ngx_hand_20_256 = "hand 20 ms -c256",
  ref_stats = "module paging", ref_retry = "module bulk retry",
}

local targets = {
  { "sequential >= 1.0 x raw libcurl loop, HTTP", "seq_http", "raw_seq_http", 1.0 },
  { "sequential >= 1.0 x raw libcurl loop (both HTTP/1.1), HTTPS", "seq_https", "raw_seq_h1_https", 1.0 },
  { "sequential >= 0.9 x luasocket keep-alive loop, HTTP", "seq_http", "luasocket_http", 0.9 },
  { "sequential >= 0.9 x luasocket+luasec keep-alive loop, HTTPS", "seq_https", "luasocket_https", 0.9 },
  { "dlq_retry_each @" .. C .. " >= 0.95 x raw multi loop, HTTP", "each_http", "raw_multi_http", 0.95 },
  { "dlq_retry_each @" .. C .. " >= 0.95 x raw multi loop, HTTPS", "each_https", "raw_multi_https", 0.95 },
  -- a fifth field "cpu": the ratio of CPU per call, at most the figure
  { "dlq_retry_each @" .. C .. " CPU per call <= 1.05 x raw multi loop, HTTP", "each_http", "raw_multi_http", 1.05, "cpu" },
  { "dlq_retry_each @" .. C .. " CPU per call <= 1.05 x raw multi loop, HTTPS", "each_https", "raw_multi_https", 1.05, "cpu" },
  { "sequential >= 2.5 x TypeScript SDK sequential, HTTP", "seq_http", "ts_seq_http", 2.5 },
  { "sequential >= 2.5 x TypeScript SDK sequential, HTTPS", "seq_https", "ts_seq_https", 2.5 },
  { "dlq_retry_each @" .. C .. " >= 8 x TypeScript SDK @" .. C .. ", HTTP", "each_http", "ts_multi_http", 8 },
  { "dlq_retry_each @" .. C .. " >= 8 x TypeScript SDK @" .. C .. ", HTTPS", "each_https", "ts_multi_https", 8 },
  { "nginx: qstash.resty >= 0.9 x hand-written handler, 20 ms -c64", "ngx_resty_20_64", "ngx_hand_20_64", 0.9 },
  { "nginx: qstash.resty >= 0.9 x hand-written handler, 20 ms -c256", "ngx_resty_20_256", "ngx_hand_20_256", 0.9 },
  { "nginx: qstash.resty >= 0.8 x hand-written handler, 0 ms -c64", "ngx_resty_0_64", "ngx_hand_0_64", 0.8 },
  { "nginx: qstash.resty >= 0.8 x hand-written handler, 0 ms -c256", "ngx_resty_0_256", "ngx_hand_0_256", 0.8 },
  { "batch of 100 >= 10 x sequential publish (messages/s), HTTP", "batch_http", "pub_seq_http", 10 },
  { "batch of 100 >= 1 x dlq_retry_each @" .. C .. " (messages/s), HTTP", "batch_http", "batch_each_http", 1 },
  { "qstash.loop.luv @" .. C .. " >= 0.95 x dlq_retry_each, 0 ms", "loop_luv_0", "loop_each_0", 0.95 },
  { "qstash.loop.luv @" .. C .. " <= 1.1 x dlq_retry_each's CPU per call, 0 ms", "loop_luv_0", "loop_each_0", 1.1, "cpu_us" },
  { "qstash.loop.cqueues @" .. C .. " >= 0.95 x dlq_retry_each, 0 ms", "loop_cq_0", "loop_each_0", 0.95 },
  { "qstash.loop.cqueues @" .. C .. " <= 1.1 x dlq_retry_each's CPU per call, 0 ms", "loop_cq_0", "loop_each_0", 1.1, "cpu_us" },
  { "qstash.loop.luv @" .. C .. " >= 0.95 x dlq_retry_each, 20 ms", "loop_luv_20", "loop_each_20", 0.95 },
  { "qstash.loop.luv @" .. C .. " <= 1.1 x dlq_retry_each's CPU per call, 20 ms", "loop_luv_20", "loop_each_20", 1.1, "cpu_us" },
  { "qstash.loop.cqueues @" .. C .. " >= 0.95 x dlq_retry_each, 20 ms", "loop_cq_20", "loop_each_20", 0.95 },
  { "qstash.loop.cqueues @" .. C .. " <= 1.1 x dlq_retry_each's CPU per call, 20 ms", "loop_cq_20", "loop_each_20", 1.1, "cpu_us" },
  { "qstash-dlq stats >= 0.8 x the module's paging alone", "cli_stats", "ref_stats", 0.8 },
  { "qstash-dlq filtered retry >= 0.8 x the module's bulk retry alone", "cli_retry", "ref_retry", 0.8 },
}
-- Targets in seconds for the whole run of N entries (the median round).
local second_targets = {
  { "qstash-dlq stats over " .. (meta.cli_n or "?") .. " entries <= 5 s", "cli_stats", 5 },
  { "qstash-dlq filtered retry of " .. (meta.cli_n or "?") .. " entries <= 10 s", "cli_retry", 10 },
}

-- BENCH_ONLY: the rows and targets of the groups that ran, alone
if (meta.only or "") ~= "" then
  -- the entries of list whose keys (at the positions given) all ran
  local function ran_only(list, ...)
    local out, at = {}, { ... }
    for _, r in ipairs(list) do
      local ran = true
      for _, i in ipairs(at) do ran = ran and runs[r[i]] ~= nil end
      if ran then out[#out + 1] = r end
    end
    return out
  end
  rows, targets = ran_only(rows, 2), ran_only(targets, 2, 3)
  second_targets = ran_only(second_targets, 2)
end

-- The local emulator (tools/qstash-dev): its time per request (the median of
-- each round's per-request median), on one keep-alive connection against a
-- new connection each.
local emu_rows = {
  { "keep-alive connection", "emu_keepalive", "emu_new" },
  { "new connection each", "emu_new" },
}
if (meta.only or "") ~= "" and not runs.emu_keepalive then emu_rows = {} end
local emu_short = { emu_new = "new connection" }
local EMU_TARGET_MS = 2

local F = {}
local broke = false
for _, row in ipairs(rows) do
  F[row[2]] = F[row[2]] or figures(row[2])
  -- with BENCH_ONLY, the contenders left out are missing, not broken
  if F[row[2]].status == "err" or (F[row[2]].status == "missing" and (meta.only or "") == "") then
    broke = true
  end
end
for _, row in ipairs(emu_rows) do
  F[row[2]] = F[row[2]] or figures(row[2])
  if F[row[2]].status == "err" or F[row[2]].status == "missing" then broke = true end
end

local function status_text(f)
  return ({ na = "n/a", err = "ERR", missing = "-" })[f.status]
end

local function fmt_num(v, digits)
  if v == nil then return "" end
  if digits == 0 then return string.format("%.0f", v) end
  return string.format("%." .. digits .. "f", v)
end

-- The ratio of two contenders: the median over the rounds of the ratio within
-- each round (the two ran next to each other), so that a slow spell of the
-- machine during one round does not tilt it; only rounds quiet for both when
-- there are any. Second result: whether it rests on quiet rounds; third:
-- the per-round ratios it is the median of.
local function ratio(a, b, field)
  if not a or not b or a.status ~= "ok" or b.status ~= "ok" then return nil end
  local quiet, all = {}, {}
  for round, ra in pairs(a.by_round) do
    local rb = b.by_round[round]
    if rb then
      local v = ra[field] / rb[field]
      all[#all + 1] = v
      if ra.quiet and rb.quiet then quiet[#quiet + 1] = v end
    end
  end
  if #quiet > 0 then return median(quiet), true, quiet end
  return median(all), false, all
end

local function rx(v) return v and string.format("%.2f", v) or "" end

-- the cells of each row
local header = { "contender", "N", "quiet", "calls/s", "CPU us/call", "RSS MiB", "reference",
                 "x calls/s", "x CPU", "x RSS", "vs TS x calls/s", "vs TS x CPU" }
local cells = {}
for _, row in ipairs(rows) do
  local label, key, ref, ts = row[1], row[2], row[3], row[4]
  local f = F[key]
  local r = ref and F[ref] or nil
  local t = ts and F[ts] or nil
  if ref and not F[ref] then F[ref] = figures(ref); r = F[ref] end
  local c
  if f.status == "ok" then
    c = { label, tostring(f.n), f.quiet_n .. "/" .. f.rounds, fmt_num(f.rate, 0), fmt_num(f.cpu_us, 1), fmt_num(f.rss, 1),
          ref and short[ref] or "",
          rx(ratio(f, r, "rate")), rx(ratio(f, r, "cpu_us")), rx(ratio(f, r, "rss")),
          rx(ratio(f, t, "rate")), rx(ratio(f, t, "cpu_us")) }
  else
    local s = status_text(f)
    c = { label, "", "", s, s, s, ref and short[ref] or "", "", "", "", "", "" }
  end
  cells[#cells + 1] = c
end

local emu_header = { "emulator (tools/qstash-dev)", "N", "quiet", "median ms", "p90 ms", "calls/s",
                     "reference", "x median" }
local emu_cells = {}
for _, row in ipairs(emu_rows) do
  local label, key, ref = row[1], row[2], row[3]
  local f, r = F[key], ref and F[ref] or nil
  if f.status == "ok" then
    emu_cells[#emu_cells + 1] = { label, tostring(f.n), f.quiet_n .. "/" .. f.rounds,
      fmt_num(f.median_us / 1000, 2), fmt_num(f.p90_us / 1000, 2), fmt_num(f.rate, 0),
      ref and emu_short[ref] or "", rx(ratio(f, r, "median_us")) }
  else
    local st = status_text(f)
    emu_cells[#emu_cells + 1] = { label, "", "", st, st, st, ref and emu_short[ref] or "", "" }
  end
end

local target_lines = {}
for _, t in ipairs(targets) do
  local a, b = F[t[2]] or figures(t[2]), F[t[3]] or figures(t[3])
  -- t[5]: the figure compared (calls/s by default: at least t[4]; CPU per
  -- call: at most t[4])
  local field = (t[5] == "cpu" and "cpu_us") or t[5] or "rate"
  local v, quiet, per_round = ratio(a, b, field)
  local function met(x) if field == "rate" then return x >= t[4] end return x <= t[4] end
  local verdict, spread = nil, "-"
  if v then
    local lo, hi, pass = math.huge, -math.huge, 0
    for _, x in ipairs(per_round) do
      lo, hi = math.min(lo, x), math.max(hi, x)
      if met(x) then pass = pass + 1 end
    end
    verdict = (met(v) and "PASS" or "FAIL") .. (quiet and "" or " (noisy rounds only)")
    spread = string.format("%.2f-%.2f, %d/%d", lo, hi, pass, #per_round)
  elseif a.status == "na" or b.status == "na" then verdict = "n/a"
  elseif a.status == "missing" or b.status == "missing" then verdict = "not run"
  else verdict = "ERR" end
  target_lines[#target_lines + 1] = { t[1], v and string.format("%.2f", v) or "-", spread, verdict }
end

-- Contenders that must not fail a single request: a wrk run with a non-2xx
-- answer or a socket error records the contender as broken (ERR).
local clean = meta.only == "cli" and {} or {
  { "nginx: qstash.resty, no failed request at -c256 (0 ms, 20 ms)", { "ngx_resty_0_256", "ngx_resty_20_256" } },
}
for _, t in ipairs(clean) do
  local runs_ok, verdict = 0, "PASS"
  for _, key in ipairs(t[2]) do
    local f = F[key] or figures(key)
    if f.status == "ok" then runs_ok = runs_ok + f.rounds
    elseif f.status == "missing" then verdict = verdict == "PASS" and "not run" or verdict
    else verdict = "FAIL" end
  end
  target_lines[#target_lines + 1] = { t[1], "-", runs_ok .. " wrk runs without errors", verdict }
end

-- the emulator's absolute target: its keep-alive median per round
if #emu_rows > 0 then
  local f = F.emu_keepalive or figures("emu_keepalive")
  local label = string.format("emulator keep-alive request, median <= %d ms", EMU_TARGET_MS)
  if f.status == "ok" then
    local per_round, lo, hi, pass = {}, math.huge, -math.huge, 0
    for _, r in pairs(f.by_round) do
      local ms = r.median_us / 1000
      per_round[#per_round + 1] = ms
      lo, hi = math.min(lo, ms), math.max(hi, ms)
      if ms <= EMU_TARGET_MS then pass = pass + 1 end
    end
    local v = f.median_us / 1000
    target_lines[#target_lines + 1] = { label, string.format("%.2f ms", v),
      string.format("%.2f-%.2f ms, %d/%d", lo, hi, pass, #per_round),
      (v <= EMU_TARGET_MS and "PASS" or "FAIL") .. (f.quiet_n > 0 and "" or " (noisy rounds only)") }
  else
    target_lines[#target_lines + 1] = { label, "-", "-", f.status == "na" and "n/a"
      or (f.status == "missing" and "not run") or "ERR" }
  end
end

for _, t in ipairs(second_targets) do
  local f = F[t[2]] or figures(t[2])
  if f.status == "ok" then
    local secs, lo, hi, pass, rounds = f.n / f.rate, math.huge, -math.huge, 0, 0
    for _, r in pairs(f.by_round) do
      local s = tonumber(r.wall)
      lo, hi, rounds = math.min(lo, s), math.max(hi, s), rounds + 1
      if s <= t[3] then pass = pass + 1 end
    end
    target_lines[#target_lines + 1] = { t[1], string.format("%.2f s", secs),
      string.format("%.2f-%.2f s, %d/%d", lo, hi, pass, rounds),
      (secs <= t[3] and "PASS" or "FAIL") .. (f.quiet_n > 0 and "" or " (noisy rounds only)") }
  else
    target_lines[#target_lines + 1] = { t[1], "-", "-", status_text(f) }
  end
end

-- text table
local widths = {}
for i, h in ipairs(header) do widths[i] = #h end
for _, c in ipairs(cells) do
  for i, v in ipairs(c) do if #v > widths[i] then widths[i] = #v end end
end
local function text_row(c)
  local parts = {}
  for i, v in ipairs(c) do
    if i == 1 or i == 7 then parts[i] = v .. string.rep(" ", widths[i] - #v)
    else parts[i] = string.rep(" ", widths[i] - #v) .. v end
  end
  return table.concat(parts, "  ")
end

local proto_https = (F.raw_seq_https and F.raw_seq_https.status == "ok" and F.raw_seq_https.proto) or "?"
local notes = {
  string.format("N = %s sequential (TypeScript SDK %s), %s at %s (TypeScript SDK %s), %s in the 20 ms drain, %s emulator requests; wrk %s s; median of %s interleaved rounds.",
    meta.n_seq, meta.n_ts_seq, meta.n_multi, conc, meta.n_ts_multi, meta.n_lat, meta.n_emu or "?", meta.wrk_seconds, meta.rounds),
  "x columns: this row / its reference row, the median over the rounds of the ratio within each round (the two run next to each other) (calls/s: higher is better; CPU and RSS: lower is better). vs TS: this row / the TypeScript SDK row of the same kind.",
  "CPU us/call: user+sys of the client process over the timed loop (getrusage / process.cpuUsage; wrk: /usr/bin/time over its run). RSS: peak of the whole process (/usr/bin/time %M).",
  string.format("HTTPS: lua-qstash (http_version \"auto\") asks for HTTP/1.1 one call at a time and for HTTP/2 in dlq_retry_each; the raw libcurl loops get libcurl's default (%s, ALPN) unless marked HTTP/1.1; luasocket, Node's fetch and wrk speak HTTP/1.1. 20 ms rows: x calls/s is the gain over the sequential drain.", proto_https),
  string.format("Emulator rows: tools/qstash-dev (Python %s) answering GET /v2/dlq to a minimal luasocket client, on one keep-alive connection or on a new connection per request; median ms / p90 ms: of the time per request within a round, then the median over the rounds; x median: keep-alive / new connection.", meta.python or "?"),
  string.format("Batch rows: %s messages published as batches of 100 (client:batch, one POST /v2/batch per 100) against %s published one by one (client:publish) and %s DLQ retries by dlq_retry_each @%s, all on the HTTP stub; calls/s is messages per second.",
    meta.n_batch or "?", meta.n_seq, meta.n_multi, conc),
  string.format("Loop rows: %s DLQ retries at %s in flight inside a host's event loop: client:async in uv's loop (qstash.loop.luv, each callback starting the next retry) and %s coroutines of a cqueues controller calling qstash.loop.cqueues.call one retry after another, each against dlq_retry_each @%s in the same round, on the stub (0 ms) and the 20 ms server, HTTP; the engine's waits inside the loops are checked to be 0.",
    meta.n_loop or "?", conc, conc, conc),
  meta.pinned == "yes" and "Clients pinned to CPU 0, the one nginx worker and the emulator to CPU 1." or "No CPU pinning.",
  string.format("qstash-dlq rows: %s DLQ entries in the local emulator (tools/qstash-dev, Python), %s rounds; calls/s is entries per second, the whole command in-process (qstash.cli.main: scan, report file, output to /dev/null); the reference is the module alone making the same requests. The emulator's CPU counts as the server's.",
    meta.cli_n or "?", meta.cli_rounds or "?"),
  -- last: absent (nil) in a CLI-only run
  meta.only ~= "cli" and "nginx rows: a second nginx (one worker, lua-nginx-module, on the stub's CPU) whose handlers make the retry against the stub above, measured with wrk (GET, keep-alive); a wrk run with any failed request breaks the bench. hand-written: connect, send, receive, setkeepalive, cjson.decode; qstash.resty.http: the cosocket transport alone, with the request value the core's send step gives; qstash.resty: qr.dlq_retry (the core's prepare/step over that transport). No thread pool." or nil,
}

if meta.only == "cli" then -- the notes on the nginx rows do not apply
  table.remove(notes, 4)
  table.remove(notes, 1)
end
-- nor those of rows that did not run
for i = #notes, 1, -1 do
  if (notes[i]:match("^Emulator rows") and #emu_rows == 0) or
     (notes[i]:match("^qstash%-dlq rows") and not runs.cli_stats) or
     (notes[i]:match("^Batch rows") and not runs.batch_http) or
     (notes[i]:match("^Loop rows") and not runs.loop_each_0) then
    table.remove(notes, i)
  end
end

-- other load on the machine while the contenders ran
do
  local fsum, esum, noisy, total = 0, 0, 0, 0
  for _, list in pairs(runs) do
    for _, r in ipairs(list) do
      if r.status == "ok" and r.elapsed > 0 then
        fsum, esum, total = fsum + r.foreign, esum + r.elapsed, total + 1
        if not r.quiet then noisy = noisy + 1 end
      end
    end
  end
  if esum > 0 then
    local line = string.format("Other processes used %.1f%% of the machine's CPU while contenders ran; %d of %d runs were noisy (others took >= %d%% meanwhile).",
      fsum / (esum * ncpu) * 100, noisy, total, QUIET * 100)
    if noisy > 0 then
      line = line .. " quiet = quiet rounds / rounds: figures and ratios use the quiet rounds where there are any, all rounds otherwise; a target judged on noisy rounds only says so. Rerun on a quiet machine for the figures of docs/benchmarks.md."
    end
    notes[#notes + 1] = line
  end
  if (tonumber(meta.quiet_waited) or 0) > 0 then
    notes[#notes + 1] = string.format("The bench waited %s s in all for the machine to be quiet before contenders.", meta.quiet_waited)
  end
end

local out = {}
local function p(s) out[#out + 1] = s end
p(text_row(header))
p(text_row((function() local d = {} for i = 1, #header do d[i] = string.rep("-", widths[i]) end return d end)()))
for _, c in ipairs(cells) do p(text_row(c)) end
p("")
if #emu_cells > 0 then
  local w = {}
  for i, h in ipairs(emu_header) do w[i] = #h end
  for _, c in ipairs(emu_cells) do
    for i, v in ipairs(c) do if #v > w[i] then w[i] = #v end end
  end
  local function emu_row(c)
    local parts = {}
    for i, v in ipairs(c) do
      if i == 1 or i == 7 then parts[i] = v .. string.rep(" ", w[i] - #v)
      else parts[i] = string.rep(" ", w[i] - #v) .. v end
    end
    return table.concat(parts, "  ")
  end
  p(emu_row(emu_header))
  local dashes = {}
  for i = 1, #emu_header do dashes[i] = string.rep("-", w[i]) end
  p(emu_row(dashes))
  for _, c in ipairs(emu_cells) do p(emu_row(c)) end
  p("")
end
-- dlq_retry_each over HTTPS by HTTP version (its own file: bench/report_versions.lua)
local ver_text, ver_md = dofile((arg[0]:match("^(.*)/") or ".") .. "/report_versions.lua")(runs, figures, ratio, conc)
for _, l in ipairs(ver_text) do p(l) end
if #ver_text > 0 then p("") end
p("targets:")
local tw = 0
for _, t in ipairs(target_lines) do if #t[1] > tw then tw = #t[1] end end
for _, t in ipairs(target_lines) do
  p(string.format("  %-" .. tw .. "s  %6s  %-18s  %s", t[1], t[2], t[3], t[4]))
end
p("")
for _, n in ipairs(notes) do p(n) end
print(table.concat(out, "\n"))

-- Markdown
local md = {}
local function m(s) md[#md + 1] = s end
m("## Benchmark results (`make bench`)")
m("")
m(string.format("Run: %s.", meta.date or "?"))
m(string.format("Machine: %s cores, %s; %s; %s.", meta.nproc or "?", meta.cpu or "?", meta.kernel or "?", meta.os or "?"))
m(string.format("Versions: libcurl %s, OpenSSL %s, nginx %s (1 worker), Node %s with %s, %s, wrk %s.",
  meta.libcurl or "?", meta.openssl or "?", meta.nginx or "?", meta.node or "?", meta.sdk or "?", meta.lua or "?", meta.wrk or "?"))
m("")
m("| " .. table.concat(header, " | ") .. " |")
local align = {}
for i = 1, #header do align[i] = (i == 1 or i == 7) and ":--" or "--:" end
m("| " .. table.concat(align, " | ") .. " |")
for _, c in ipairs(cells) do m("| " .. table.concat(c, " | ") .. " |") end
m("")
if #emu_cells > 0 then
  m("| " .. table.concat(emu_header, " | ") .. " |")
  local emu_align = {}
  for i = 1, #emu_header do emu_align[i] = (i == 1 or i == 7) and ":--" or "--:" end
  m("| " .. table.concat(emu_align, " | ") .. " |")
  for _, c in ipairs(emu_cells) do m("| " .. table.concat(c, " | ") .. " |") end
  m("")
end
for _, l in ipairs(ver_md) do m(l) end
if #ver_md > 0 then m("") end
m("| target | figure | rounds: range, passing | result |")
m("|:--|--:|:--|:--|")
for _, t in ipairs(target_lines) do m("| " .. t[1] .. " | " .. t[2] .. " | " .. t[3] .. " | " .. t[4] .. " |") end
m("")
for _, n in ipairs(notes) do m("- " .. n) end
local fh = assert(io.open(md_path, "w"))
fh:write(table.concat(md, "\n"), "\n")
fh:close()
print("\n(written to " .. md_path .. ")")

os.exit(broke and 1 or 0)
