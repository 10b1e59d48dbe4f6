// view.js's pure parts: the state's words and how a conversation's new lines follow from the shown ones.

import assert from "node:assert/strict";
import { test } from "node:test";

import { appendOnly, countdownText, stateText } from "../../src/minimess/adapters/web_page/view.js";

test("lines only added at the end and forgotten at the start are an append", () => {
  assert.deepEqual(appendOnly(["a", "b"], ["a", "b", "c", "d"]), { drop: 0, prepend: 0, append: 2 });
  assert.deepEqual(appendOnly(["a", "b", "c"], ["b", "c", "d"]), { drop: 1, prepend: 0, append: 1 });
  assert.deepEqual(appendOnly(["a", "b"], ["a", "b"]), { drop: 0, prepend: 0, append: 0 });
  // The first line forgotten, its date line comes again before the next one.
  assert.deepEqual(appendOnly(["d:1:a", "a", "b"], ["d:1:b", "b", "c"]), { drop: 2, prepend: 1, append: 1 });
});

test("any other change is no append", () => {
  assert.equal(appendOnly([], ["a"]), null);
  assert.equal(appendOnly(["a", "b"], []), null);
  assert.equal(appendOnly(["a", "b", "c"], ["a", "x", "c"]), null); // a line replaced (settled, failed)
  assert.equal(appendOnly(["a", "b"], ["x", "a", "b"]), null); // a line before, not a date
  assert.equal(appendOnly(["a", "b", "c"], ["a", "b"]), null); // the last one gone
});

test("the state's words hold no countdown: that is apart", () => {
  const waiting = { state: "waiting", attempt: 2, reason: "the server is going away", retryAt: 10_000 };
  assert.equal(stateText(waiting), "reconnecting (attempt 2: the server is going away)");
  assert.equal(countdownText(waiting, 6_800), "retry in 3.2 s");
  assert.equal(countdownText(waiting, 12_000), "retry in 0.0 s");
  assert.equal(countdownText({ state: "connected", node: "n1", uid: "alice" }, 0), "");
});
