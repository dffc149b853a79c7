// Copyright (c) 2022 Upstash, Inc. MIT license: see spec/ts-sdk/LICENSE.qstash-js.
// What the ported tests take from the `nanoid` package (upstream's dev
// dependency, not installed here): a random URL-safe id of 21 characters.
import { randomBytes } from "node:crypto";

const ALPHABET = "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict";

export const nanoid = (size = 21) =>
  Array.from(randomBytes(size), (b) => ALPHABET[b & 63]).join("");
