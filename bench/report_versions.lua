-- The bench's table of dlq_retry_each over HTTPS by HTTP version (the ver_*
-- rows of bench/run, BENCH_ONLY=versions): what `http_version = "auto"`
-- chooses for concurrent work rests on it. Each run is a new client, so its
-- connections and TLS handshakes count in; nginx counts the connections.
-- Loaded by bench/report.lua:
--   local text, md = dofile("bench/report_versions.lua")(runs, figures, ratio, conc)
-- Both are lists of lines (empty when no ver_* row ran).
return function(runs, figures, ratio, conc)
  local text, md = {}, {}
  local header = { "dlq_retry_each over HTTPS", "N", "quiet", "calls/s", "CPU us/call", "connections",
                   "HTTP/2 x calls/s", "HTTP/2 x CPU" }
  local cells = {}
  local function median(t)
    table.sort(t)
    local n = #t
    if n == 0 then return nil end
    if n % 2 == 1 then return t[(n + 1) // 2] end
    return (t[n // 2] + t[n // 2 + 1]) / 2
  end
  local function rx(v) return v and string.format("%.2f", v) or "" end
  for _, lat in ipairs({ "0", "20" }) do
    for _, c in ipairs({ conc, "8" }) do
      local h1 = figures(("ver_h1_%s_%s"):format(lat, c))
      for _, v in ipairs({ "h1", "h2" }) do
        local key = ("ver_%s_%s_%s"):format(v, lat, c)
        if runs[key] then
          local f = figures(key)
          local label = string.format("%s ms, @%s, %s", lat, c, v == "h1" and "HTTP/1.1" or "HTTP/2")
          if f.status == "ok" then
            local conns = {}
            for _, r in ipairs(runs[key]) do
              if r.conns and (r.quiet or f.quiet_n == 0) then conns[#conns + 1] = r.conns end
            end
            local nc = median(conns)
            cells[#cells + 1] = { label, tostring(f.n), f.quiet_n .. "/" .. f.rounds,
              string.format("%.0f", f.rate), string.format("%.1f", f.cpu_us),
              nc and string.format("%.0f", nc) or "",
              v == "h2" and rx(ratio(f, h1, "rate")) or "", v == "h2" and rx(ratio(f, h1, "cpu_us")) or "" }
          else
            cells[#cells + 1] = { label, "", "", f.status, "", "", "", "" }
          end
        end
      end
    end
  end
  if #cells == 0 then return text, md end

  local w = {}
  for i, h in ipairs(header) do w[i] = #h end
  for _, c in ipairs(cells) do
    for i, v in ipairs(c) do if #v > w[i] then w[i] = #v end end
  end
  local function row(c)
    local parts = {}
    for i, v in ipairs(c) do
      parts[i] = i == 1 and v .. string.rep(" ", w[i] - #v) or string.rep(" ", w[i] - #v) .. v
    end
    return table.concat(parts, "  ")
  end
  text[#text + 1] = row(header)
  local dashes = {}
  for i = 1, #header do dashes[i] = string.rep("-", w[i]) end
  text[#text + 1] = row(dashes)
  for _, c in ipairs(cells) do text[#text + 1] = row(c) end
  text[#text + 1] = "(connections: TLS connections nginx accepted from the client during the run, the median"
    .. " over the rounds; HTTP/2 x: the HTTP/2 row / the HTTP/1.1 row above it, per round, median)"

  md[#md + 1] = "| " .. table.concat(header, " | ") .. " |"
  local align = {}
  for i = 1, #header do align[i] = i == 1 and ":--" or "--:" end
  md[#md + 1] = "| " .. table.concat(align, " | ") .. " |"
  for _, c in ipairs(cells) do md[#md + 1] = "| " .. table.concat(c, " | ") .. " |" end
  return text, md
end
