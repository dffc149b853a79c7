-- The bad input of the batch, queue, URL-group and flow-control functions:
-- each row must raise "bad argument #<argno> to '<fn>' (<want>...)" and send
-- nothing, whichever way it is called (spec/bad_input_spec.lua: a client over
-- libcurl, prepare/step, async, qstash.safe and the module functions;
-- spec/resty_bad_input_spec.lua: qstash.resty under nginx).
--
-- A row: { fn, arity (arguments before qr's config), args, argno, want }.
local URL = "https://example.com/in"
local FC_0 = { flow_control = { key = "k", parallelism = 0 } }
local FC_1E9 = { flow_control = { key = "k", parallelism = 1e9 } }

return {
  -- an empty batch, an item without destination
  { "batch", 1, { {} }, 1, "items must not be empty" },
  { "batch_json", 1, { {} }, 1, "items must not be empty" },
  { "batch", 1, { { { destination = URL }, { body = "b" } } }, 1, "item 2: destination must be" },
  { "batch_json", 1, { { { body = { a = 1 } } } }, 1, "item 1: destination must be" },
  -- a queue name with '/'
  { "batch", 1, { { { destination = URL, queue = "a/b" } } }, 1, "item 1: queue name must be of [A-Za-z0-9_.-]" },
  { "enqueue", 4, { "a/b", URL, "x" }, 1, "queue name may hold only" },
  { "enqueue_json", 4, { "a/b", URL, { a = 1 } }, 1, "queue name may hold only" },
  { "queue_upsert", 2, { "a/b", { parallelism = 1 } }, 1, "queue name may hold only" },
  { "queue_get", 1, { "a/b" }, 1, "queue name may hold only" },
  { "queue_delete", 1, { "a/b" }, 1, "queue name may hold only" },
  { "queue_pause", 1, { "a/b" }, 1, "queue name may hold only" },
  { "queue_resume", 1, { "a/b" }, 1, "queue name may hold only" },
  -- a URL-group name with '/'
  { "url_group_get", 1, { "a/b" }, 1, "URL group name must be of [A-Za-z0-9_.-]" },
  { "url_group_delete", 1, { "a/b" }, 1, "URL group name must be of [A-Za-z0-9_.-]" },
  { "url_group_add_endpoints", 2, { "a/b", { { url = URL } } }, 1, "URL group name must be of [A-Za-z0-9_.-]" },
  -- parallelism 0 and 1e9
  { "queue_upsert", 2, { "q", { parallelism = 0 } }, 2, "parallelism must be a whole number from 1 to" },
  { "queue_upsert", 2, { "q", { parallelism = 1e9 } }, 2, "parallelism must be a whole number from 1 to" },
  { "flow_control_pin", 2, { "k", { parallelism = 0 } }, 2, "'parallelism' must be an integer from 1 to" },
  { "flow_control_pin", 2, { "k", { parallelism = 1e9 } }, 2, "'parallelism' must be an integer from 1 to" },
  { "publish", 3, { URL, "x", FC_0 }, 3, "option 'flow_control.parallelism' must be an integer from 1 to" },
  { "publish", 3, { URL, "x", FC_1E9 }, 3, "option 'flow_control.parallelism' must be an integer from 1 to" },
  { "publish_json", 3, { URL, { a = 1 }, FC_1E9 }, 3, "option 'flow_control.parallelism' must be" },
  { "enqueue", 4, { "q", URL, "x", FC_1E9 }, 4, "option 'flow_control.parallelism' must be" },
  { "batch", 1, { { { destination = URL, opts = FC_0 } } }, 1, "item 1: option 'flow_control.parallelism'" },
  { "batch", 1, { { { destination = URL, opts = FC_1E9 } } }, 1, "item 1: option 'flow_control.parallelism'" },
  -- a pin without any limit
  { "flow_control_pin", 2, { "k", {} }, 2, "settings need 'parallelism' or 'rate' (a pin without a limit)" },
  { "flow_control_pin", 2, { "k", { period = 60 } }, 2, "settings need 'parallelism' or 'rate' (a pin without a limit)" },
}
