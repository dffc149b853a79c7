// Contender: the official TypeScript SDK (@upstash/qstash) on Node.
// `await client.dlq.retry(id)` sequentially (CONC = 1) or with a pool keeping
// CONC promises in flight. The SDK sends POST /v2/dlq/retry?dlqIds=<id>.
// Usage: node bench/ts_bench.mjs SDK_ENTRY BASE_URL N CONC WARMUP
// (https: NODE_EXTRA_CA_CERTS names the bench certificate)
// Prints "RESULT calls=N wall=S cpu=S" (the loop only, without start-up).
import { pathToFileURL } from "node:url";

const [sdkEntry, baseUrl, nArg, concArg, warmArg] = process.argv.slice(2);
const { Client } = await import(pathToFileURL(sdkEntry).href);
const n = Number(nArg), conc = Number(concArg), warm = Number(warmArg);
const client = new Client({ token: "bench", baseUrl });

async function retry(id) {
  const res = await client.dlq.retry(id);
  if (!res || !res.responses || res.responses[0].messageId !== "msg_bench") {
    throw new Error(`unexpected result for ${id}: ${JSON.stringify(res)}`);
  }
}

async function run(prefix, count) {
  if (conc <= 1) {
    for (let i = 1; i <= count; i++) await retry(prefix + i);
    return;
  }
  let next = 1;
  const worker = async () => {
    while (next <= count) await retry(prefix + next++);
  };
  await Promise.all(Array.from({ length: Math.min(conc, count) }, worker));
}

await run("w-", warm);
const t0 = process.hrtime.bigint();
const c0 = process.cpuUsage();
await run("id-", n);
const wall = Number(process.hrtime.bigint() - t0) / 1e9;
const c = process.cpuUsage(c0);
console.log(`RESULT calls=${n} wall=${wall.toFixed(6)} cpu=${((c.user + c.system) / 1e6).toFixed(6)}`);
