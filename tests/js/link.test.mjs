// link.js with a fake WebSocket, fetch and timers: URLs with positions, backoff, refusals, publishes.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  Link,
  MAX_ATTEMPTS,
  newMessageId,
  sameOriginServer,
  subscribePath,
} from "../../src/minimess/adapters/web_page/link.js";

/** Timers that run when the test moves the clock. */
class Clock {
  constructor() {
    this.now = 1_000_000;
    this.timers = new Map();
    this.ids = 0;
  }

  setTimeout = (callback, ms) => {
    this.ids += 1;
    this.timers.set(this.ids, { at: this.now + ms, callback });
    return this.ids;
  };

  clearTimeout = (id) => {
    this.timers.delete(id);
  };

  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      const due = [...this.timers].filter(([, timer]) => timer.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) {
        break;
      }
      this.timers.delete(due[0]);
      this.now = due[1].at;
      due[1].callback();
    }
    this.now = end;
  }
}

/** A WebSocket the test plays the server of. */
function fakeWebSocket() {
  class FakeSocket {
    static made = [];

    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closedWith = null;
      FakeSocket.made.push(this);
    }

    static get last() {
      return FakeSocket.made.at(-1);
    }

    send(text) {
      this.sent.push(JSON.parse(text));
    }

    close(code) {
      this.closedWith = code;
    }

    // The server's side:
    open() {
      this.onopen?.({});
    }

    receive(document) {
      this.onmessage({ data: JSON.stringify(document) });
    }

    greet(fields = {}) {
      this.open();
      this.receive({ type: "success", uid: "alice", node: "host:8080", topics: [], max_message_bytes: 65536, ...fields });
    }

    drop(code = 1006, reason = "") {
      this.onclose({ code, reason });
    }

    pubs() {
      return this.sent.filter((frame) => frame.type === "pub");
    }
  }
  return FakeSocket;
}

function fakeFetch(answers) {
  const asked = [];
  const fetch = (url, options) => {
    asked.push({ url, options });
    const answer = answers.shift() ?? { error: true };
    if (answer.error) {
      return Promise.reject(new TypeError("Failed to fetch"));
    }
    return Promise.resolve({ status: answer.status, text: async () => answer.body ?? "" });
  };
  return { fetch, asked };
}

function setUp({ token = "", answers = [], random = () => 0.5, ...options } = {}) {
  const clock = new Clock();
  const WebSocket = fakeWebSocket();
  const { fetch, asked } = fakeFetch(answers);
  const heard = [];
  const events = new Proxy(
    {},
    { get: (_, name) => (...args) => heard.push([name, ...args]) },
  );
  let counter = 0;
  const getRandomValues = (array) => {
    for (let i = 0; i < array.length; i += 1) {
      array[i] = (counter += 7);
    }
    return array;
  };
  const link = new Link({
    server: "ws://chat.example:8080",
    uid: "alice",
    token,
    events,
    WebSocket,
    fetch,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random,
    now: () => clock.now,
    getRandomValues,
    ...options,
  });
  const states = () => heard.filter(([name]) => name === "state").map(([, state]) => state);
  const lastState = () => states().at(-1);
  return { link, clock, WebSocket, asked, heard, states, lastState };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test("the URL names the uid, each topic with its position, and the token", () => {
  const { link, clock, WebSocket } = setUp({ token: "t.o.k" });
  link.join("news");
  link.join("afrozalm:mala:zorfa");
  link.start();
  const first = WebSocket.last;
  assert.equal(first.url, "ws://chat.example:8080/subscribe/id:alice/topic:news/topic:afrozalm:mala:zorfa?token=t.o.k");
  first.greet();
  // Topics without a position: a quiet sub each, whose answer says where they start.
  assert.deepEqual(
    first.sent.map((frame) => [frame.type, frame.topic]),
    [
      ["sub", "news"],
      ["sub", "afrozalm:mala:zorfa"],
    ],
  );
  first.receive({ type: "subscribed", topic: "news", epoch: "mem-1", offset: 3 });
  first.receive({ type: "subscribed", topic: "afrozalm:mala:zorfa", epoch: "mem-1", offset: -1 });
  first.receive({ type: "message", id: "m1", topic: "news", from: "bob", body: "hi", ts: "2026-11-29T10:00:00.000Z", epoch: "mem-1", offset: 4 });
  first.drop();
  clock.advance(5000);
  assert.equal(
    WebSocket.last.url,
    "ws://chat.example:8080/subscribe/id:alice/topic:news@mem-1:4/topic:afrozalm:mala:zorfa@mem-1:-1?token=t.o.k",
  );
});

test("a topic joined with a kept position asks to recover from it", () => {
  const { link, WebSocket, heard } = setUp();
  link.join("news", { epoch: "e", offset: 9 });
  link.start();
  assert.equal(WebSocket.last.url, "ws://chat.example:8080/subscribe/id:alice/topic:news@e:9");
  WebSocket.last.greet();
  WebSocket.last.receive({ type: "subscribed", topic: "news", epoch: "e2", offset: 0, recovered: false });
  assert.deepEqual(heard.at(-1), ["missed", "news", "the server could not recover them after the reconnect"]);
});

test("names are percent-encoded in the path, the token in the query", () => {
  assert.equal(
    subscribePath("a.b", ["x:y"], new Map([["x:y", { epoch: "K1.0", offset: 7 }]])),
    "/subscribe/id:a.b/topic:x:y@K1.0:7",
  );
  const { link, WebSocket } = setUp({ token: "a+b/c=" });
  link.start();
  assert.equal(WebSocket.last.url, "ws://chat.example:8080/subscribe/id:alice?token=a%2Bb%2Fc%3D");
});

test("connected says the node and uid; a drop waits a drawn delay, then connects again", () => {
  const { link, clock, WebSocket, lastState } = setUp();
  link.start();
  assert.equal(lastState().state, "connecting");
  WebSocket.last.greet();
  assert.deepEqual(lastState(), { state: "connected", node: "host:8080", uid: "alice" });
  WebSocket.last.drop(1001, "server shutting down");
  const waiting = lastState();
  assert.equal(waiting.state, "waiting");
  assert.equal(waiting.attempt, 1);
  assert.equal(waiting.reason, "the server is going away");
  assert.equal(waiting.retryAt, clock.now + 0.5 * 0.5 * 1000);
  const made = WebSocket.made.length;
  clock.advance(249);
  assert.equal(WebSocket.made.length, made);
  clock.advance(1);
  assert.equal(WebSocket.made.length, made + 1);
  assert.equal(lastState().state, "connecting");
});

test("backoff: full jitter under min(cap, first * 2^n), back to first after a success", async () => {
  const { link, clock, WebSocket, lastState } = setUp({ random: () => 0.999999 });
  link.start();
  const bounds = [];
  for (let attempt = 0; attempt < 7; attempt += 1) {
    WebSocket.last.drop(); // before open: the link asks why with fetch (a network error here)
    await settle();
    const state = lastState();
    assert.equal(state.state, "waiting");
    assert.equal(state.attempt, attempt + 2);
    bounds.push(Math.round((state.retryAt - clock.now) / 100) / 10);
    clock.advance(state.retryAt - clock.now);
  }
  assert.deepEqual(bounds, [0.5, 1, 2, 4, 5, 5, 5]);
  WebSocket.last.greet();
  WebSocket.last.drop();
  assert.equal(Math.round((lastState().retryAt - clock.now) / 100) / 10, 0.5);
});

test("a delay drawn at 0 retries at once; reconnect now cuts a wait", () => {
  const { link, clock, WebSocket, lastState } = setUp({ random: () => 0.9 });
  link.start();
  WebSocket.last.greet();
  WebSocket.last.drop();
  assert.equal(lastState().state, "waiting");
  const made = WebSocket.made.length;
  link.reconnectNow();
  assert.equal(WebSocket.made.length, made + 1);
  assert.equal(lastState().state, "connecting");
  clock.advance(10_000);
  assert.equal(WebSocket.made.length, made + 1, "the cut wait's timer does not connect again");
});

test("a handshake refused with 401 is shown with the server's reason and not retried", async () => {
  const { link, clock, WebSocket, asked, lastState } = setUp({
    token: "bad",
    answers: [{ status: 401, body: "bad token signature\n" }],
  });
  link.join("news");
  link.start();
  WebSocket.last.drop();
  await settle();
  assert.equal(asked.length, 1);
  assert.equal(asked[0].url, "http://chat.example:8080/subscribe/id:alice/topic:news?token=bad");
  assert.equal(asked[0].options.cache, "no-store");
  assert.deepEqual(lastState(), {
    state: "refused",
    reason: "the server refused: HTTP 401: bad token signature (paste a token and press Connect)",
  });
  const made = WebSocket.made.length;
  clock.advance(60_000);
  assert.equal(WebSocket.made.length, made);
});

test("400, 403 and 404 are refusals too", async () => {
  for (const status of [400, 403, 404]) {
    const { link, WebSocket, lastState } = setUp({ answers: [{ status, body: "why" }] });
    link.start();
    WebSocket.last.drop();
    await settle();
    assert.deepEqual(lastState(), { state: "refused", reason: `the server refused: HTTP ${status}: why` });
  }
});

test("a 403 for another uid says to use the uid the token is for", async () => {
  const { link, WebSocket, lastState } = setUp({ answers: [{ status: 403, body: "the token is for bob, not alice" }] });
  link.start();
  WebSocket.last.drop();
  await settle();
  assert.equal(
    lastState().reason,
    "the server refused: HTTP 403: the token is for bob, not alice (use the uid the token is for, or a token for this uid)",
  );
});

test("started again with a fresh token after a refusal, the link keeps its positions and sends what waits, once", async () => {
  const { link, clock, WebSocket, heard, lastState } = setUp({
    token: "old",
    answers: [{ status: 401, body: "the token expired" }],
  });
  link.join("news");
  link.start();
  WebSocket.last.greet();
  WebSocket.last.receive({ type: "subscribed", topic: "news", epoch: "e", offset: 7 });
  const inFlight = link.publish("news", "sent before the drop");
  WebSocket.last.drop(4001);
  clock.advance(5000);
  WebSocket.last.drop();
  await settle();
  assert.equal(lastState().state, "refused");
  const typed = link.publish("news", "typed while refused");
  link.start("fresh");
  const socket = WebSocket.last;
  assert.equal(socket.url, "ws://chat.example:8080/subscribe/id:alice/topic:news@e:7?token=fresh");
  socket.greet();
  socket.receive({ type: "subscribed", topic: "news", epoch: "e", offset: 7, recovered: true });
  assert.deepEqual(
    socket.pubs().map((frame) => [frame.id, frame.body]),
    [
      [inFlight, "sent before the drop"],
      [typed, "typed while refused"],
    ],
  );
  assert.equal(heard.filter(([name]) => name === "failed").length, 0);
});

test("three failures before open whose probe says 426: the state asks about the origin and proxies, retries go on", async () => {
  const answers = Array.from({ length: 4 }, () => ({ status: 426, body: "Upgrade Required" }));
  const { link, clock, WebSocket, lastState } = setUp({ answers, origin: "http://chat.example:8080" });
  link.start();
  const reasons = [];
  for (let failure = 0; failure < 4; failure += 1) {
    WebSocket.last.drop();
    await settle();
    assert.equal(lastState().state, "waiting");
    reasons.push(lastState().reason);
    clock.advance(5000);
  }
  const hint =
    "the server refuses the WebSocket though a plain request passes: is this page's origin " +
    "(http://chat.example:8080) allowed (--allowed-origin), and does any proxy pass WebSocket upgrades?";
  assert.deepEqual(reasons, [
    "the connection was lost during the handshake",
    "the connection was lost during the handshake",
    hint,
    hint,
  ]);
  assert.equal(lastState().state, "connecting");
});

test("426 (the handshake would pass), 429 and 503 are retried with backoff", async () => {
  for (const [status, words] of [
    [426, "the connection was lost during the handshake"],
    [429, "the server refused the connection: HTTP 429: too many connections from 10.0.0.1"],
    [503, "the server refused the connection: HTTP 503: too many connections"],
  ]) {
    const { link, clock, WebSocket, lastState } = setUp({
      answers: [{ status, body: words.split(": ").at(-1) }],
    });
    link.start();
    WebSocket.last.drop();
    await settle();
    assert.equal(lastState().state, "waiting", String(status));
    assert.equal(lastState().reason, words);
    const made = WebSocket.made.length;
    clock.advance(5000);
    assert.equal(WebSocket.made.length, made + 1);
  }
});

test("a publish in flight when the connection drops is sent again with the same id", () => {
  const { link, clock, WebSocket, heard } = setUp();
  link.join("news");
  link.start();
  WebSocket.last.greet();
  WebSocket.last.receive({ type: "subscribed", topic: "news", epoch: "e", offset: 1 });
  const id = link.publish("news", "hello");
  assert.match(id, /^[A-Za-z0-9_-]{22}$/);
  const [first] = WebSocket.last.pubs();
  assert.deepEqual({ ...first, ref: "?" }, { type: "pub", topic: "news", body: "hello", id, ref: "?" });
  WebSocket.last.drop();
  clock.advance(5000);
  const second = WebSocket.last;
  second.greet();
  assert.deepEqual(second.pubs(), [], "publishes wait until the recovery is answered");
  second.receive({ type: "subscribed", topic: "news", epoch: "e", offset: 1, recovered: true });
  const [again] = second.pubs();
  assert.equal(again.id, id);
  assert.equal(again.body, "hello");
  second.receive({ type: "ack", ref: again.ref, id, epoch: "e", offset: 2 });
  assert.deepEqual(heard.filter(([name]) => name === "published"), [["published", "news", id, { epoch: "e", offset: 2 }, null]]);
});

test("publish_timeout sends again at once with the same id; an echo settles it", () => {
  const { link, WebSocket, heard } = setUp();
  link.join("news");
  link.start();
  WebSocket.last.greet();
  const id = link.publish("news", "hello");
  const [first] = WebSocket.last.pubs();
  WebSocket.last.receive({ type: "error", code: "publish_timeout", reason: "not confirmed", ref: first.ref });
  const [, second] = WebSocket.last.pubs();
  assert.equal(second.id, id);
  assert.notEqual(second.ref, first.ref);
  WebSocket.last.receive({ type: "message", id, topic: "news", from: "alice", body: "hello", ts: "2026-11-29T10:00:00.000Z", epoch: "e", offset: 0 });
  WebSocket.last.receive({ type: "ack", ref: second.ref, id, epoch: "e", offset: 0 });
  assert.deepEqual(heard.filter(([name]) => name === "published"), [
    ["published", "news", id, { epoch: "e", offset: 0 }, "2026-11-29T10:00:00.000Z"],
  ]);
});

test("no ack in time: the connection is taken for dead, the publish goes again on the next one, same id", () => {
  const { link, clock, WebSocket, heard, lastState } = setUp({ ackTimeout: 10 });
  link.start();
  const id = link.publish("news", "hello");
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt += 1) {
    const socket = WebSocket.last;
    socket.greet();
    assert.deepEqual(socket.pubs().map((frame) => frame.id), [id]);
    clock.advance(10_000);
    assert.equal(socket.closedWith, 1000, "closed");
    assert.equal(lastState().state, "waiting");
    assert.equal(lastState().reason, "no answer from the server in 10 s");
    clock.advance(5000);
  }
  const [failed] = heard.filter(([name]) => name === "failed");
  assert.equal(failed[2], id);
  assert.match(failed[3], /^no answer from the server in 10 s, after 3 attempts; it may or may not have arrived$/);
});

test("an opened connection without success within 10 s is closed and tried again", () => {
  const { link, clock, WebSocket, lastState } = setUp({ successTimeout: 10 });
  link.start();
  const socket = WebSocket.last;
  socket.open();
  clock.advance(9999);
  assert.equal(socket.closedWith, null);
  clock.advance(1);
  assert.equal(socket.closedWith, 1000);
  assert.deepEqual([lastState().state, lastState().reason], ["waiting", "no answer from the server in 10 s"]);
  socket.drop(1006); // its close event comes later: nothing more happens
  clock.advance(5000);
  assert.equal(WebSocket.made.length, 2);
});

/** Connected, with a `time` frame every `seconds` s for `count` ticks. */
function ticking(socket, clock, seconds, count) {
  for (let tick = 0; tick < count; tick += 1) {
    clock.advance(seconds * 1000);
    socket.receive({ type: "time", ts: "2026-11-29T10:00:00.000Z" });
  }
}

test("three ticks of silence from a ticking server close the connection and connect again", () => {
  const { link, clock, WebSocket, lastState } = setUp();
  link.start();
  const socket = WebSocket.last;
  socket.greet();
  ticking(socket, clock, 5, 2);
  // The server froze: its last frame was a tick; 15 s (three of its 5 s ticks) pass for it.
  clock.advance(14_999);
  assert.equal(socket.closedWith, null);
  assert.equal(lastState().state, "connected");
  clock.advance(2);
  assert.equal(socket.closedWith, 1000);
  assert.deepEqual([lastState().state, lastState().reason], ["waiting", "no answer from the server in 15 s"]);
  clock.advance(5000);
  assert.equal(WebSocket.made.length, 2);
});

test("any frame is a sign of life, and silence is never judged under the floor", () => {
  const { link, clock, WebSocket } = setUp({ silenceFloor: 10 });
  link.start();
  const socket = WebSocket.last;
  socket.greet();
  // Ticks every second: three of them are 3 s, under the floor of 10 s.
  ticking(socket, clock, 1, 3);
  clock.advance(9_000);
  socket.receive({ type: "unsubscribed", topic: "news" });
  clock.advance(9_000);
  assert.equal(socket.closedWith, null);
  clock.advance(1_002);
  assert.equal(socket.closedWith, 1000);
});

test("without ticks (--tick 0) silence says nothing: an idle connection stays", () => {
  const { link, clock, WebSocket, lastState } = setUp();
  link.start();
  const socket = WebSocket.last;
  socket.greet();
  clock.advance(600_000);
  assert.equal(socket.closedWith, null);
  assert.equal(lastState().state, "connected");
});

test("a connection made again learns the pace anew: one tick does not start the watch", () => {
  const { link, clock, WebSocket } = setUp();
  link.start();
  const first = WebSocket.last;
  first.greet();
  ticking(first, clock, 5, 2);
  first.drop(1006);
  clock.advance(5000);
  const second = WebSocket.last;
  assert.notEqual(second, first);
  second.greet();
  ticking(second, clock, 5, 1);
  clock.advance(120_000);
  assert.equal(second.closedWith, null);
});

test("a handshake the server never answers is given up after 10 s and tried again", async () => {
  const { link, clock, WebSocket, asked, lastState } = setUp({ successTimeout: 10 });
  link.start();
  const socket = WebSocket.last;
  clock.advance(9999);
  assert.equal(socket.closedWith, null);
  clock.advance(1);
  assert.equal(socket.closedWith, 1000);
  assert.deepEqual([lastState().state, lastState().reason], ["waiting", "no answer from the server in 10 s"]);
  socket.drop(1006); // its close event comes later: no probe, nothing more
  await settle();
  assert.equal(asked.length, 0);
  clock.advance(5000);
  assert.equal(WebSocket.made.length, 2);
});

test("broker_unavailable fails the publish with the reason; retry sends it with the same id", () => {
  const { link, WebSocket, heard } = setUp();
  link.start();
  WebSocket.last.greet();
  const id = link.publish("news", "hello");
  const [first] = WebSocket.last.pubs();
  WebSocket.last.receive({ type: "error", code: "broker_unavailable", reason: "kafka is down", ref: first.ref });
  assert.deepEqual(heard.filter(([name]) => name === "failed"), [["failed", "news", id, "broker_unavailable: kafka is down"]]);
  assert.equal(WebSocket.last.pubs().length, 1, "not sent again by itself");
  link.retry(id);
  assert.deepEqual(heard.at(-1), ["pending", "news", id]);
  const [, again] = WebSocket.last.pubs();
  assert.equal(again.id, id);
});

test("forbidden, id_reused and bad_frame fail the publish too", () => {
  for (const code of ["forbidden", "id_reused", "bad_frame"]) {
    const { link, WebSocket, heard } = setUp();
    link.start();
    WebSocket.last.greet();
    const id = link.publish("news", "hello");
    WebSocket.last.receive({ type: "error", code, reason: "no", ref: WebSocket.last.pubs()[0].ref });
    assert.deepEqual(heard.at(-1), ["failed", "news", id, `${code}: no`]);
  }
});

test("rate_limited: one pause for everything, then the dropped pubs go again in their order, same ids", () => {
  const { link, clock, WebSocket } = setUp({ rateLimitPause: 1 });
  link.start();
  WebSocket.last.greet();
  const socket = WebSocket.last;
  const [a, b, c] = ["a", "b", "c"].map((body) => link.publish("news", body));
  const [first, second, third] = socket.pubs();
  socket.receive({ type: "ack", ref: first.ref, id: a, epoch: "e", offset: 1 });
  socket.receive({ type: "error", code: "rate_limited", reason: "slow down", ref: second.ref });
  socket.receive({ type: "error", code: "rate_limited", reason: "slow down", ref: third.ref });
  const d = link.publish("news", "d");
  assert.equal(socket.pubs().length, 3, "nothing goes during the pause");
  assert.equal(clock.timers.size, 1 + 0, "one timer: the pause (the dropped pubs' ack timers are stopped)");
  clock.advance(1000);
  assert.deepEqual(socket.pubs().slice(3).map((frame) => frame.id), [b, c, d]);
});

test("a sub answered rate_limited is sent again after the pause, not taken for a refusal", () => {
  const { link, clock, WebSocket, heard } = setUp({ rateLimitPause: 1 });
  link.start();
  WebSocket.last.greet();
  link.join("news");
  const [sub] = WebSocket.last.sent;
  WebSocket.last.receive({ type: "error", code: "rate_limited", reason: "slow down", ref: sub.ref });
  assert.deepEqual([...link.topics], ["news"]);
  assert.equal(heard.filter(([name]) => name === "refusedTopic").length, 0);
  clock.advance(1000);
  const again = WebSocket.last.sent.at(-1);
  assert.deepEqual([again.type, again.topic], ["sub", "news"]);
  assert.notEqual(again.ref, sub.ref);
});

test("stop() ends the pause timer and every other: a stopped link reports nothing again", async () => {
  const { link, clock, WebSocket, heard } = setUp({ answers: [{ status: 503, body: "busy" }] });
  link.start();
  WebSocket.last.greet();
  const id = link.publish("news", "a");
  WebSocket.last.receive({ type: "error", code: "rate_limited", reason: "slow down", ref: WebSocket.last.pubs()[0].ref });
  link.stop();
  assert.equal(clock.timers.size, 0);
  assert.deepEqual(link.unsettled(), [{ topic: "news", id, sent: false }]);
  const before = heard.length;
  // A stopped link's socket, probe and timers stay silent.
  const second = setUp({ answers: [{ status: 401, body: "no" }] });
  second.link.start();
  const socket = second.WebSocket.last;
  const heardBefore = second.heard.length;
  socket.drop(); // the probe starts
  second.link.stop();
  await settle();
  socket.receive({ type: "error", code: "bad_frame", reason: "x", ref: null });
  second.clock.advance(60_000);
  assert.equal(second.heard.length, heardBefore);
  assert.equal(heard.length, before);
  assert.equal(link.retry(id), false);
});

test("a frame with fields of the wrong type is dropped with one notice; the room goes on", () => {
  const { link, WebSocket, heard } = setUp();
  link.join("news");
  link.start();
  WebSocket.last.greet();
  WebSocket.last.receive({ type: "subscribed", topic: "news", epoch: "e", offset: 0 });
  const good = { type: "message", id: "m1", topic: "news", from: "bob", body: "hi", ts: "2026-11-29T10:00:00.000Z", epoch: "e", offset: 1 };
  for (const bad of [
    { ...good, body: 42 },
    { ...good, ts: "yesterday" },
    { ...good, offset: "2" },
    { ...good, from: null },
    { type: "ack", ref: 3 },
    { type: "subscribed", topic: 5 },
    { type: "error", code: 1, reason: "x" },
    [1, 2],
  ]) {
    WebSocket.last.receive(bad);
  }
  WebSocket.last.onmessage({ data: "not json" });
  WebSocket.last.receive(good);
  const notices = heard.filter(([name]) => name === "notice");
  assert.deepEqual(notices, [
    ["notice", "the server sent a frame this page cannot read (a message without a string id, topic, from, body or ts); it was dropped"],
  ]);
  assert.deepEqual(heard.filter(([name]) => name === "message").map(([, message]) => message.id), ["m1"]);
});

test("leaving a room fails its waiting publishes, and forgets its failed ones", () => {
  const { link, WebSocket, heard } = setUp();
  link.join("news");
  link.join("lobby");
  const waiting = link.publish("news", "never sent");
  const other = link.publish("lobby", "stays");
  link.leave("news");
  assert.deepEqual(heard.filter(([name]) => name === "failed"), [["failed", "news", waiting, "you left news; it was not sent"]]);
  assert.equal(link.retry(waiting), false);
  link.start();
  WebSocket.last.greet();
  assert.deepEqual(WebSocket.last.pubs().map((frame) => frame.id), [other]);
});

test("lines typed while disconnected wait, at most queueSize, and go in order once connected", () => {
  const { link, WebSocket } = setUp({ queueSize: 3 });
  link.join("news");
  const ids = ["a", "b", "c"].map((body) => link.publish("news", body));
  assert.equal(link.publish("news", "d"), null);
  link.start();
  WebSocket.last.greet();
  assert.deepEqual(
    WebSocket.last.pubs().map((frame) => [frame.body, frame.id]),
    [
      ["a", ids[0]],
      ["b", ids[1]],
      ["c", ids[2]],
    ],
  );
});

test("a message longer than the server's max_message_bytes is refused before sending", () => {
  const { link, WebSocket } = setUp();
  link.start();
  WebSocket.last.greet({ max_message_bytes: 200 });
  assert.equal(link.oversize("news", "hi"), null);
  const reason = link.oversize("news", "é".repeat(80));
  assert.match(
    reason,
    /^too long by \d+ bytes \(the server takes at most 200 bytes per message, counted in UTF-8, with about \d+ for the message's envelope\); nothing was sent$/,
  );
  // The frame as sent, in UTF-8 bytes, is what the server counts: 80 "é" are 160 bytes.
  const over = Number(reason.match(/by (\d+) bytes/)[1]);
  const envelope = Number(reason.match(/about (\d+)/)[1]);
  assert.equal(160 + envelope - 200, over);
  assert.ok(envelope > 40 && envelope < 100, String(envelope));
});

test("a message at or below the kept offset is a copy, dropped; recovered:false is a gap", () => {
  const { link, clock, WebSocket, heard } = setUp();
  link.join("news");
  link.start();
  WebSocket.last.greet();
  WebSocket.last.receive({ type: "subscribed", topic: "news", epoch: "e", offset: 4 });
  const message = (offset, epoch = "e") => ({
    type: "message",
    id: `m${epoch}${offset}`,
    topic: "news",
    from: "bob",
    body: "x",
    ts: "2026-11-29T10:00:00.000Z",
    epoch,
    offset,
  });
  WebSocket.last.receive(message(4));
  WebSocket.last.receive(message(5));
  WebSocket.last.receive(message(5));
  WebSocket.last.drop();
  clock.advance(5000);
  assert.match(WebSocket.last.url, /topic:news@e:5$/);
  WebSocket.last.greet();
  WebSocket.last.receive({ type: "subscribed", topic: "news", epoch: "e2", offset: 0, recovered: false });
  WebSocket.last.receive(message(1, "e2"));
  const names = heard.filter(([name]) => ["message", "missed"].includes(name));
  assert.deepEqual(
    names.map(([name, value]) => (name === "message" ? value.id : [name, value])),
    ["me5", ["missed", "news"], "me21"],
  );
});

test("joining while connected sends a sub; a refused sub leaves the topic", () => {
  const { link, WebSocket, heard } = setUp();
  link.start();
  WebSocket.last.greet();
  link.join("secret");
  const [sub] = WebSocket.last.sent;
  assert.equal(sub.type, "sub");
  WebSocket.last.receive({ type: "error", code: "forbidden", reason: "not allowed", ref: sub.ref });
  assert.deepEqual(heard.at(-1), ["refusedTopic", "secret", "forbidden: not allowed"]);
  assert.deepEqual([...link.topics], []);
});

test("time frames are ignored; an error without a request is a notice", () => {
  const { link, WebSocket, heard } = setUp();
  link.start();
  WebSocket.last.greet();
  const before = heard.length;
  WebSocket.last.receive({ type: "time", ts: "2026-11-29T10:00:00.000Z" });
  assert.equal(heard.length, before);
  WebSocket.last.receive({ type: "error", code: "bad_frame", reason: "what", ref: null });
  assert.deepEqual(heard.at(-1), ["notice", "the server says: bad_frame: what"]);
});

test("message ids are 22 base64url characters", () => {
  const id = newMessageId((array) => array.fill(255));
  assert.equal(id, "_".repeat(22));
});

test("the server is the page's own host, over wss: for an https: page", () => {
  assert.equal(sameOriginServer({ protocol: "https:", host: "chat.example" }), "wss://chat.example");
  assert.equal(sameOriginServer({ protocol: "http:", host: "127.0.0.1:8080" }), "ws://127.0.0.1:8080");
});
