-- qstash-dlq and filters that could target the whole DLQ: a value made only of
-- separators is a usage error naming the flag (QStash would read it as no
-- filter at all), and a listing that does not match the filter it was asked
-- with (a server or proxy that ignored it) stops the command before anything
-- is deleted or retried.

local E = require "spec.support.emulator"
local H = require "spec.support.cli"

describe("qstash-dlq filters", function()
  describe("made only of separators", function()
    local cx = H.fixture{ time_scale = 0.001 }

    local NBSP = "\194\160"
    local cases = {
      { "--label", "," }, { "--label", " " }, { "--label", " , ," }, { "--url", "," }, { "--label", NBSP },
      { "--url-group", "," }, { "--schedule-id", ", " }, { "--queue", "," }, { "--caller-ip", "," },
      { "--flow-control-key", " ," }, { "--message-id", "," },
    }

    it("are usage errors naming the flag, and the DLQ is left whole", function()
      local h = cx.h
      local e = h:dead{ "/f/1", "/f/2", "/f/3" } -- no labels
      local report = cx.tmp .. "/r.jsonl"
      for _, c in ipairs(cases) do
        local commands = { { "delete" } }
        if c[2] == "," then -- every command, for the value of the report
          commands = { { "delete" }, { "delete", "--dry-run" }, { "retry" }, { "retry", "--dry-run" },
            { "list" }, { "stats" }, { "export", "-o", cx.tmp .. "/x.jsonl" } }
        end
        for _, cmd in ipairs(commands) do
          local args = {}
          for i, v in ipairs(cmd) do args[i] = v end
          args[#args + 1], args[#args + 2] = c[1], c[2]
          if cmd[1] == "delete" or cmd[1] == "retry" then args[#args + 1] = "--report"; args[#args + 1] = report end
          local status, out, err = h:run(args)
          assert.are.equal(2, status, table.concat(args, " ") .. "\n" .. out .. err)
          assert.matches(c[1] .. " '" .. c[2] .. "' selects nothing", err, 1, true)
          assert.are.equal("", out)
        end
      end
      -- also as one of several values of a repeated flag
      local status, _, err = h:run{ "delete", "--label", "a", "--label", " , " }
      assert.are.equal(2, status, err)
      assert.matches("--label ' , ' selects nothing", err, 1, true)
      local left = h:dlq_ids()
      for _, m in ipairs(e) do assert.is_true(left[m.dlqId], m.dlqId .. " left the DLQ") end
      assert.is_nil(E.read_file(report))
      assert.is_nil(E.read_file(cx.tmp .. "/x.jsonl"))
      assert.are.equal(0, #cx.sink:received())
    end)

    it("refuses a ',' in --message-id, which names one message", function()
      local status, _, err = cx.h:run{ "delete", "--message-id", "msg_a,msg_b" }
      assert.are.equal(2, status)
      assert.matches("--message-id takes one value, without ','", err, 1, true)
    end)

    it("still selects by a label given with separators around it", function()
      local h = cx.h
      local e = h:dead({ "/g/1", "/g/2" }, function(i) return { ["Upstash-Label"] = "lab" .. i } end)
      local status, out, err = h:run{ "delete", "--label", " lab1 ," }
      assert.are.equal(0, status, err)
      assert.are.equal("deleted " .. e[1].dlqId .. "\n", out)
      local left = h:dlq_ids()
      assert.is_nil(left[e[1].dlqId])
      assert.is_true(left[e[2].dlqId])
    end)
  end)

  describe("ignored by the server", function()
    local sink, tmp, h

    setup(function()
      tmp = E.tmpdir()
      sink = E.start_sink()
      h = H.new({ url = sink.url, token = "t" }, sink, tmp)
    end)
    teardown(function()
      if sink then sink:stop() end
      if tmp then os.execute("rm -rf " .. E.shell_quote(tmp)) end
    end)
    before_each(function() sink:clear() end)

    -- Every request answered with the same listing (as a server that ignores
    -- the query would), with the counts a delete and a retry read.
    local function answer(messages)
      local cjson = require "cjson"
      sink:set_status(200, { headers = { ["Content-Type"] = "application/json" },
        body = cjson.encode{ messages = messages, deleted = #messages,
          responses = { { messageId = "msg_new1" }, { messageId = "msg_new2" } } } })
    end

    local function methods()
      local out = {}
      for _, r in ipairs(sink:received()) do out[#out + 1] = r.method .. " " .. r.target end
      return out
    end

    -- Entry 1-0 matches every filter below; 2-0 matches none of them.
    local good = { dlqId = "1-0", messageId = "msg_1", url = "https://a.example/x", topicName = "grp",
      scheduleId = "scd_1", queueName = "q1", callerIP = "10.0.0.1", label = "lab", flowControlKey = "fk",
      responseStatus = 500, createdAt = 1700000000000 }
    local bad = { dlqId = "2-0", messageId = "msg_2", url = "https://b.example/y", responseStatus = 404,
      callerIP = "10.0.0.2", createdAt = 1800000000000 }
    local filters = {
      { "--label", "lab" }, { "--url", "https://a.example/x" }, { "--url-group", "grp" },
      { "--schedule-id", "scd_1" }, { "--queue", "q1" }, { "--caller-ip", "10.0.0.1" },
      { "--flow-control-key", "fk" }, { "--status", "500" }, { "--message-id", "msg_1" },
      { "--from", "1600000000000", "--to", "1750000000000" }, { "--to", "1750000000000" },
    }

    for _, verb in ipairs{ "delete", "retry" } do
      it(verb .. " acts on nothing when the listing holds an entry outside the filter", function()
        -- every filter for delete; two for retry, which takes the same snapshot
        local chosen = filters
        if verb == "retry" then chosen = { filters[1], filters[#filters - 1] } end
        for _, f in ipairs(chosen) do
          sink:clear()
          answer{ good, bad }
          local report = tmp .. "/" .. verb .. ".jsonl"
          os.remove(report)
          local args = { verb, "--report", report }
          for _, v in ipairs(f) do args[#args + 1] = v end
          local status, out, err = h:run(args)
          assert.are.equal(1, status, table.concat(args, " ") .. "\n" .. err)
          assert.are.equal("", out)
          assert.matches("the server listed DLQ entry 2-0, which does not match " .. f[#f - 1] ..
            ": it ignored the filter", err, 1, true)
          for _, m in ipairs(methods()) do
            assert.matches("^GET /v2/dlq%?", m) -- never a DELETE or a retry
          end
          local lines = H.read_jsonl(report)
          assert.are.equal(1, #lines)
          assert.are.equal("summary", lines[1].type)
          assert.are.equal("filter_ignored", lines[1].error.kind)
        end
        -- a dry run says the same and lists nothing
        local status, out, err = h:run{ verb, "--dry-run", "--label", "lab" }
        assert.are.equal(1, status)
        assert.are.equal("", out)
        assert.matches("it ignored the filter", err, 1, true)
      end)
    end

    it("export writes no page holding an entry outside the filter, and exits 1", function()
      answer{ good, bad }
      local path = tmp .. "/export.jsonl"
      local status, _, err = h:run{ "export", "--label", "lab", "-o", path }
      assert.are.equal(1, status, err)
      assert.matches("does not match --label: it ignored the filter", err, 1, true)
      assert.are.equal("", E.read_file(path))
    end)

    it("acts when every entry listed matches (labels as an array too)", function()
      local other = { dlqId = "3-0", messageId = "msg_3", url = "https://c.example/", labels = { "zz", "lab" },
        createdAt = 1 }
      answer{ good, other }
      local status, out, err = h:run{ "delete", "--label", "lab" }
      assert.are.equal(0, status, err)
      assert.are.equal("deleted 1-0\ndeleted 3-0\n", out)
      local m = methods()
      assert.are.equal("DELETE /v2/dlq?dlqIds=1-0&dlqIds=3-0", m[#m])
    end)
  end)
end)
