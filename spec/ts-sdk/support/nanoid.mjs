// Copyright (c) 2022 Upstash, Inc. MIT license: see spec/ts-sdk/LICENSE.qstash-js.
// What the upstream tests import from the `nanoid` package: nanoid(), a
// random id of 21 characters of the URL-safe alphabet (A-Za-z0-9_-), so that
// the ported files need no package beyond the SDK's.
import { randomBytes } from "node:crypto";

const ALPHABET = "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict";

export const nanoid = (size = 21) => {
  let id = "";
  for (const byte of randomBytes(size)) id += ALPHABET[byte & 63];
  return id;
};
