// The rooms a person has joined: their conversations, unread counts and which one is attached (no DOM).

// Lines kept per room; older ones are forgotten, as a terminal's scrollback does.
export const MAX_LINES = 1000;
// A topic name, as the server checks it (docs/protocol.md, Names).
const TOPIC = /^[A-Za-z0-9_.:-]{1,128}$/;

/** Why `name` cannot be a topic, or null when it can. */
export function topicProblem(name) {
  if (name === "") {
    return "type a room name";
  }
  if (!TOPIC.test(name)) {
    return "a room name is 1 to 128 of A-Z a-z 0-9 _ . : - (no spaces)";
  }
  return null;
}

/** `date` as YYYY-MM-DD in local time. */
export function localDate(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** `date` as HH:MM:SS in local time. */
export function localTime(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

// The joined rooms kept per uid in localStorage under this prefix + the uid (see README).
export const ROOMS_KEY = "minimess.rooms.";

/** What localStorage keeps of `topics` (in the order joined), each with its position when known. */
export function roomsRecord(topics, positions) {
  return JSON.stringify(
    topics.map((topic) => {
      const position = positions.get(topic);
      return position === undefined ? { topic } : { topic, epoch: position.epoch, offset: position.offset };
    }),
  );
}

/** The rooms of a roomsRecord, [{topic, position: {epoch, offset} or null}]; what is not one is left out. */
export function readRoomsRecord(text) {
  let record;
  try {
    record = JSON.parse(text ?? "[]");
  } catch {
    return [];
  }
  if (!Array.isArray(record)) {
    return [];
  }
  return record
    .filter((entry) => typeof entry?.topic === "string" && topicProblem(entry.topic) === null)
    .map(({ topic, epoch, offset }) => ({
      topic,
      position: typeof epoch === "string" && Number.isInteger(offset) ? { epoch, offset } : null,
    }));
}

/**
 * The lines of a room as shown: a `date` line before the first line of each new local date.
 *
 * `dateOf` turns a Date into the day it is shown as (localDate by default; tests give their own).
 */
export function withDates(lines, dateOf = localDate) {
  const shown = [];
  let day = null;
  for (const line of lines) {
    const lineDay = dateOf(line.time);
    if (lineDay !== day) {
      shown.push({ kind: "date", key: `d:${lineDay}:${line.key}`, text: lineDay });
      day = lineDay;
    }
    shown.push(line);
  }
  return shown;
}

/**
 * Every joined room, in the order joined, with its lines.
 *
 * A line is one of
 * - `{kind: "message", key, id, from, body, time, offset, epoch}` (time a Date);
 * - `{kind: "pending", key, pubId, from, body, time}`: an own message not echoed yet;
 * - `{kind: "failed", key, pubId, from, body, time, reason}`: an own message that was not published;
 * - `{kind: "notice", key, text, time}`.
 */
export class Rooms {
  /** `forget(pubId)` is told of each failed line dropped (older than MAX_LINES): it cannot be retried. */
  constructor(uid, forget = () => {}) {
    // Own messages are not unread.
    this.uid = uid;
    this.forget = forget;
    // Per topic: {topic, lines, unread, last: {epoch, offset} of the last message shown}.
    this.rooms = new Map();
    // The topic whose conversation is shown, or null.
    this.attached = null;
    this.keys = 0;
  }

  get topics() {
    return [...this.rooms.keys()];
  }

  room(topic) {
    return this.rooms.get(topic);
  }

  /** Join `topic` (if not yet) and attach it. */
  join(topic) {
    if (!this.rooms.has(topic)) {
      this.rooms.set(topic, { topic, lines: [], unread: 0, last: null });
    }
    this.attach(topic);
  }

  /** Leave `topic`; the next room (or none) is attached if it was. */
  leave(topic) {
    const topics = this.topics;
    const index = topics.indexOf(topic);
    if (index < 0) {
      return;
    }
    this.rooms.delete(topic);
    if (this.attached === topic) {
      const rest = this.topics;
      this.attached = rest.length ? rest[Math.min(index, rest.length - 1)] : null;
      if (this.attached !== null) {
        this.rooms.get(this.attached).unread = 0;
      }
    }
  }

  attach(topic) {
    const room = this.rooms.get(topic);
    if (room !== undefined) {
      this.attached = topic;
      room.unread = 0;
    }
  }

  /**
   * Add a message from the server to its room; false when it is not shown: a room not joined, an id
   * already shown, or an offset at or below the last shown of the same epoch (a copy).
   *
   * A pending line of the same id (an own publish) gives way to it: the message takes its place in
   * the order the server delivered it.
   */
  addMessage(message) {
    const room = this.rooms.get(message.topic);
    if (room === undefined) {
      return false;
    }
    const { last } = room;
    if (last !== null && last.epoch === message.epoch && message.offset <= last.offset) {
      return false;
    }
    if (room.lines.some((line) => line.kind === "message" && line.id === message.id)) {
      return false;
    }
    room.lines = room.lines.filter((line) => !(line.kind !== "message" && line.pubId === message.id));
    room.last = { epoch: message.epoch, offset: message.offset };
    this.push(room, {
      kind: "message",
      id: message.id,
      from: message.from,
      body: message.body,
      time: new Date(message.ts),
      offset: message.offset,
      epoch: message.epoch,
    });
    if (message.topic !== this.attached && message.from !== this.uid) {
      room.unread += 1;
    }
    return true;
  }

  /** An own message on its way: shown as pending until its echo replaces it. */
  addPending(topic, pubId, body, time) {
    const room = this.rooms.get(topic);
    if (room !== undefined) {
      this.push(room, { kind: "pending", pubId, from: this.uid, body, time });
    }
  }

  /**
   * The own message `pubId` failed (with `reason`), or is pending again (reason null), from now on
   * as `newPubId` when given (sent again as a new publish).
   */
  setPublishState(topic, pubId, reason, newPubId = pubId) {
    const room = this.rooms.get(topic);
    if (room === undefined) {
      return;
    }
    const index = room.lines.findIndex((line) => line.kind !== "message" && line.pubId === pubId);
    if (index < 0) {
      return;
    }
    const line = room.lines[index];
    const kind = reason === null ? "pending" : "failed";
    room.lines[index] = { ...line, kind, reason, pubId: newPubId, key: `${kind}:${newPubId}:${++this.keys}` };
  }

  /** The line of the own message `pubId` (pending or failed) in `topic`, or undefined. */
  ownLine(topic, pubId) {
    return this.rooms.get(topic)?.lines.find((line) => line.kind !== "message" && line.pubId === pubId);
  }

  /**
   * The own message `pubId` was acknowledged at `position` (or came back at it, at `ts`). Its echo
   * replaces its pending line, unless the room is past that position already: then no echo will
   * come (a repeat the server acknowledged without delivering it again, its original delivered
   * before a gap), and the line becomes the message where it stands, at the message's time (`ts`
   * when known, else when it was typed).
   */
  settle(topic, pubId, position, ts = null) {
    const room = this.rooms.get(topic);
    const { last } = room ?? {};
    if (position === null || last === null || last === undefined) {
      return;
    }
    if (last.epoch !== position.epoch || last.offset < position.offset) {
      return;
    }
    const index = room.lines.findIndex((line) => line.kind === "pending" && line.pubId === pubId);
    if (index >= 0) {
      const { body, time } = room.lines[index];
      const at = ts === null ? time : new Date(ts);
      const line = { kind: "message", id: pubId, from: this.uid, body, time: at, ...position };
      line.key = `message:${pubId}:${++this.keys}`;
      room.lines[index] = line;
    }
  }

  /** A note in `topic`'s conversation (not a message: it counts as nothing unread). */
  addNotice(topic, text, time) {
    const room = this.rooms.get(topic);
    if (room !== undefined) {
      this.push(room, { kind: "notice", text, time });
    }
  }

  /** What to show for `topic`: its lines with the date lines between. */
  shown(topic, dateOf = localDate) {
    const room = this.rooms.get(topic);
    return room === undefined ? [] : withDates(room.lines, dateOf);
  }

  push(room, line) {
    line.key = `${line.kind}:${line.id ?? line.pubId ?? ""}:${++this.keys}`;
    room.lines.push(line);
    if (room.lines.length > MAX_LINES) {
      for (const gone of room.lines.splice(0, room.lines.length - MAX_LINES)) {
        if (gone.kind === "failed") {
          this.forget(gone.pubId);
        }
      }
    }
  }
}
