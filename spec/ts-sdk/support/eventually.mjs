// Copyright (c) 2022 Upstash, Inc. MIT license: see spec/ts-sdk/LICENSE.qstash-js.
// Port of upstash/qstash-js src/client/test-utils.ts (v2.11.3, 81d951b):
// `eventually`, as written, except that the polling interval is scaled by
// TIME_SCALE (see bun-test.mjs); the timeout is not.
import { TIME_SCALE } from "./bun-test.mjs";

const EVENTUALLY_TIMEOUT = 5000;

export const eventually = async function (function_, options = {}) {
  const { timeout = EVENTUALLY_TIMEOUT, interval = 100 } = options;

  const startTime = Date.now();

  while (true) {
    try {
      await function_();
      // Success case - all assertions passed
      return;
    } catch (error) {
      const lastError = error;
      if (Date.now() - startTime >= timeout) {
        throw new Error(`Assertions not satisfied within timeout: ${lastError.message}`);
      }
      await new Promise((resolve) => setTimeout(resolve, interval * TIME_SCALE));
    }
  }
};
