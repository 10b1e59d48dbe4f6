// rooms.js: unread counts, copies dropped by offset, own lines replaced by their echo, date lines.

import assert from "node:assert/strict";
import { test } from "node:test";

import { MAX_LINES, readRoomsRecord, Rooms, roomsRecord, topicProblem, withDates } from "../../src/minimess/adapters/web_page/rooms.js";

let next = 0;
function message(topic, offset, fields = {}) {
  next += 1;
  return {
    topic,
    id: `id-${next}`,
    from: "bob",
    body: `m${offset}`,
    ts: "2026-11-29T10:00:00.000Z",
    offset,
    epoch: "e1",
    ...fields,
  };
}

const bodies = (rooms, topic) => rooms.room(topic).lines.map((line) => line.body ?? line.text);

test("messages of a room not attached count as unread until it is attached", () => {
  const rooms = new Rooms("alice");
  rooms.join("news");
  rooms.join("lobby");
  assert.equal(rooms.attached, "lobby");
  rooms.addMessage(message("news", 1));
  rooms.addMessage(message("news", 2));
  rooms.addMessage(message("lobby", 1));
  assert.equal(rooms.room("news").unread, 2);
  assert.equal(rooms.room("lobby").unread, 0);
  rooms.attach("news");
  assert.equal(rooms.room("news").unread, 0);
});

test("own messages and notices are not unread", () => {
  const rooms = new Rooms("alice");
  rooms.join("news");
  rooms.join("lobby");
  rooms.addMessage(message("news", 1, { from: "alice" }));
  rooms.addNotice("news", "you may have missed messages", new Date());
  assert.equal(rooms.room("news").unread, 0);
});

test("a message at or below the last offset of its epoch is a copy, dropped; another epoch starts afresh", () => {
  const rooms = new Rooms("alice");
  rooms.join("news");
  assert.equal(rooms.addMessage(message("news", 5)), true);
  assert.equal(rooms.addMessage(message("news", 5)), false);
  assert.equal(rooms.addMessage(message("news", 3)), false);
  assert.equal(rooms.addMessage(message("news", 6)), true);
  assert.equal(rooms.addMessage(message("news", 0, { epoch: "e2" })), true);
  assert.deepEqual(bodies(rooms, "news"), ["m5", "m6", "m0"]);
});

test("a message of a room not joined is not kept", () => {
  const rooms = new Rooms("alice");
  assert.equal(rooms.addMessage(message("news", 1)), false);
});

test("a pending line gives way to its echo, which takes the server's order", () => {
  const rooms = new Rooms("alice");
  rooms.join("news");
  rooms.addPending("news", "pub-1", "mine", new Date());
  rooms.addMessage(message("news", 1, { body: "theirs" }));
  assert.deepEqual(
    rooms.room("news").lines.map((line) => line.kind),
    ["pending", "message"],
  );
  rooms.addMessage(message("news", 2, { id: "pub-1", from: "alice", body: "mine" }));
  assert.deepEqual(bodies(rooms, "news"), ["theirs", "mine"]);
  assert.deepEqual(
    rooms.room("news").lines.map((line) => line.kind),
    ["message", "message"],
  );
});

test("a failed line keeps its place and gets a new key, and goes back to pending on retry", () => {
  const rooms = new Rooms("alice");
  rooms.join("news");
  rooms.addPending("news", "pub-1", "mine", new Date());
  const pendingKey = rooms.room("news").lines[0].key;
  rooms.setPublishState("news", "pub-1", "broker_unavailable: down");
  const failed = rooms.room("news").lines[0];
  assert.equal(failed.kind, "failed");
  assert.equal(failed.reason, "broker_unavailable: down");
  assert.notEqual(failed.key, pendingKey);
  rooms.setPublishState("news", "pub-1", null);
  assert.equal(rooms.room("news").lines[0].kind, "pending");
});

test("leaving the attached room attaches the next one", () => {
  const rooms = new Rooms("alice");
  rooms.join("a");
  rooms.join("b");
  rooms.join("c");
  rooms.attach("b");
  rooms.leave("b");
  assert.equal(rooms.attached, "c");
  rooms.leave("c");
  assert.equal(rooms.attached, "a");
  rooms.leave("a");
  assert.equal(rooms.attached, null);
});

test("a date line comes before the first line of each new date", () => {
  const day = (date) => date.toISOString().slice(0, 10);
  const line = (iso, key) => ({ kind: "message", key, time: new Date(iso) });
  const shown = withDates(
    [
      line("2026-11-28T23:59:59Z", "a"),
      line("2026-11-29T00:00:01Z", "b"),
      line("2026-11-29T10:00:00Z", "c"),
      line("2026-11-30T00:00:00Z", "d"),
    ],
    day,
  );
  assert.deepEqual(
    shown.map((item) => (item.kind === "date" ? item.text : item.key)),
    ["2026-11-28", "a", "2026-11-29", "b", "c", "2026-11-30", "d"],
  );
});

test("dates are local: YYYY-MM-DD of the local calendar", () => {
  const rooms = new Rooms("alice");
  rooms.join("news");
  const ts = new Date(2026, 0, 2, 3, 4, 5);
  rooms.addMessage(message("news", 1, { ts: ts.toISOString() }));
  assert.deepEqual(
    rooms.shown("news").map((item) => item.text ?? item.kind),
    ["2026-01-02", "message"],
  );
});

test("a room keeps its last MAX_LINES lines", () => {
  const rooms = new Rooms("alice");
  rooms.join("news");
  for (let offset = 0; offset < MAX_LINES + 5; offset += 1) {
    rooms.addMessage(message("news", offset));
  }
  assert.equal(rooms.room("news").lines.length, MAX_LINES);
  assert.equal(rooms.room("news").lines[0].body, "m5");
});

test("topic names are checked as the server checks them", () => {
  assert.equal(topicProblem("afrozalm:mala:zorfa"), null);
  assert.equal(topicProblem("a.b_c-d"), null);
  assert.notEqual(topicProblem(""), null);
  assert.notEqual(topicProblem("two words"), null);
  assert.notEqual(topicProblem("x".repeat(129)), null);
  assert.notEqual(topicProblem("a/b"), null);
});

test("an acknowledged own message whose echo cannot come any more becomes a message where it stands", () => {
  const rooms = new Rooms("alice");
  rooms.join("news");
  const typed = new Date("2026-11-29T09:59:59.000Z");
  rooms.addPending("news", "pub-1", "mine", typed);
  rooms.addPending("news", "pub-2", "later", new Date());
  rooms.settle("news", "pub-1", { epoch: "e1", offset: 3 });
  assert.equal(rooms.room("news").lines[0].kind, "pending", "nothing seen yet: the echo is on its way");
  rooms.addMessage(message("news", 5));
  rooms.settle("news", "pub-1", { epoch: "e1", offset: 6 });
  assert.equal(rooms.room("news").lines[0].kind, "pending", "past the last seen: the echo is on its way");
  rooms.settle("news", "pub-1", { epoch: "e1", offset: 3 });
  assert.equal(rooms.room("news").lines[0].time, typed, "the time it was typed (an ack has no ts)");
  assert.deepEqual(
    rooms.room("news").lines.map((line) => [line.kind, line.body, line.offset]),
    [
      ["message", "mine", 3],
      ["pending", "later", undefined],
      ["message", "m5", 5],
    ],
  );
});

test("an echo that came as a copy settles its pending line at the message's ts", () => {
  const rooms = new Rooms("alice");
  rooms.join("news");
  rooms.addMessage(message("news", 5));
  rooms.addPending("news", "pub-1", "mine", new Date("2026-11-29T12:00:00.000Z"));
  rooms.settle("news", "pub-1", { epoch: "e1", offset: 4 }, "2026-11-29T10:00:04.000Z");
  const [line] = rooms.room("news").lines.filter((each) => each.id === "pub-1");
  assert.equal(line.kind, "message");
  assert.equal(line.time.toISOString(), "2026-11-29T10:00:04.000Z");
});

test("failed lines older than MAX_LINES are dropped and forgotten (no retry for them)", () => {
  const forgotten = [];
  const rooms = new Rooms("alice", (pubId) => forgotten.push(pubId));
  rooms.join("news");
  rooms.addPending("news", "pub-1", "mine", new Date());
  rooms.setPublishState("news", "pub-1", "broker_unavailable: down");
  rooms.addPending("news", "pub-2", "pending one", new Date());
  for (let offset = 1; offset <= MAX_LINES; offset += 1) {
    rooms.addMessage(message("news", offset));
  }
  assert.deepEqual(forgotten, ["pub-1"]);
});

test("a failed line sent again as a new publish takes the new id", () => {
  const rooms = new Rooms("alice");
  rooms.join("news");
  rooms.addPending("news", "old", "mine", new Date());
  rooms.setPublishState("news", "old", "you connected as bob");
  assert.equal(rooms.ownLine("news", "old").kind, "failed");
  rooms.setPublishState("news", "old", null, "new");
  assert.equal(rooms.ownLine("news", "old"), undefined);
  assert.equal(rooms.ownLine("news", "new").kind, "pending");
});

test("the rooms record keeps topics in order with their positions, and reading it skips what is not one", () => {
  const text = roomsRecord(["news", "lobby"], new Map([["news", { epoch: "e1", offset: 4 }]]));
  assert.deepEqual(readRoomsRecord(text), [
    { topic: "news", position: { epoch: "e1", offset: 4 } },
    { topic: "lobby", position: null },
  ]);
  assert.deepEqual(readRoomsRecord(null), []);
  assert.deepEqual(readRoomsRecord("{"), []);
  assert.deepEqual(readRoomsRecord('{"topic":"x"}'), []);
  assert.deepEqual(readRoomsRecord('[{"topic":"two words"},{"topic":"ok","epoch":1,"offset":2},null]'), [
    { topic: "ok", position: null },
  ]);
});
