import { afterAll, expect } from 'vitest';

/*
 * Every test file closes what it opens (STYLE 9, after graphile-worker): a server still
 * listening when the file ends fails it. Closing is asynchronous, so it is given a moment.
 */
const listening = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;

afterAll(async () => {
  const deadline = Date.now() + 2_000;
  while (listening() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(listening(), 'a server opened by this file is still listening').toBe(0);
});
