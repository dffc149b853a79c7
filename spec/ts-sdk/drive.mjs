// Drives the local emulator with the official TypeScript SDK (@upstash/qstash),
// so that our client and our emulator cannot share one misunderstanding of the
// API. usage: node drive.mjs <base_url> <token> <command> <json args>
// Prints one JSON line: the SDK's result, or {"error": "..."}.
import { Client } from "@upstash/qstash";

const [baseUrl, token, command, rawArgs] = process.argv.slice(2);
const args = JSON.parse(rawArgs || "{}");
const client = new Client({ baseUrl, token, retry: false });

const commands = {
  publish: () => client.publishJSON({ url: args.url, body: args.body, retries: args.retries }),
  list: () => client.dlq.listMessages(args),
  retry: () => client.dlq.retry(args.dlqId),
  delete: () => client.dlq.delete(args.dlqId),
};

try {
  const result = await commands[command]();
  process.stdout.write(JSON.stringify(result === undefined ? null : result) + "\n");
} catch (e) {
  process.stdout.write(JSON.stringify({ error: String(e && e.message || e) }) + "\n");
}
