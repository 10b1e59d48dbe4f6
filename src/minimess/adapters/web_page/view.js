// What the page shows: the connection state, the room list and the conversation, written with textContent only.

import { localTime } from "./rooms.js";
import { escapeInvisible, escapeText } from "./visible_text.js";

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** The words for a link state (see link.js), `now` in milliseconds for the countdown. */
export function stateText(state, now) {
  switch (state.state) {
    case "connected":
      return `connected to ${escapeInvisible(state.node)} as ${state.uid}`;
    case "connecting":
      return state.attempt > 1 && state.reason
        ? `connecting… (attempt ${state.attempt}: ${escapeInvisible(state.reason)})`
        : "connecting…";
    case "waiting": {
      const seconds = Math.max(0, (state.retryAt - now) / 1000);
      return `reconnecting in ${seconds.toFixed(1)} s (attempt ${state.attempt}: ${escapeInvisible(state.reason)})`;
    }
    case "refused":
      return escapeInvisible(state.reason);
    default:
      return "not connected";
  }
}

export function renderState(stateElement, reconnectButton, state, now) {
  stateElement.dataset.state = state.state;
  const text = stateText(state, now);
  if (stateElement.textContent !== text) {
    stateElement.textContent = text;
  }
  reconnectButton.hidden = state.state !== "waiting";
}

/**
 * The room list: one `li[data-topic]` per room, kept across renders so that focus stays on its
 * buttons; `onAttach(topic)` and `onLeave(topic)` are called on their clicks.
 */
export function renderRooms(list, rooms, onAttach, onLeave) {
  const existing = new Map([...list.children].map((item) => [item.dataset.topic, item]));
  let previous = null;
  for (const topic of rooms.topics) {
    const room = rooms.room(topic);
    let item = existing.get(topic);
    existing.delete(topic);
    if (item === undefined) {
      item = element("li");
      item.dataset.topic = topic;
      const name = element("button", "room", topic);
      name.type = "button";
      name.addEventListener("click", () => onAttach(topic));
      const unread = element("span", "unread");
      const leave = element("button", "leave", "×");
      leave.type = "button";
      leave.setAttribute("aria-label", `leave ${topic}`);
      leave.title = `leave ${topic}`;
      leave.addEventListener("click", () => onLeave(topic));
      item.append(name, unread, leave);
    }
    const attached = rooms.attached === topic;
    const name = item.querySelector("button.room");
    for (const node of [item, name]) {
      if (attached) {
        node.setAttribute("aria-current", "true");
      } else {
        node.removeAttribute("aria-current");
      }
    }
    const unread = item.querySelector("span.unread");
    unread.textContent = String(room.unread);
    unread.hidden = room.unread === 0;
    unread.setAttribute("aria-label", `${room.unread} unread`);
    const next = previous === null ? list.firstChild : previous.nextSibling;
    if (next !== item) {
      list.insertBefore(item, next);
    }
    previous = item;
  }
  for (const item of existing.values()) {
    item.remove();
  }
}

// An escape as escapeText writes it: every backslash in its result starts one.
const ESCAPE = /\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|[nrt\\])/g;

/** `text` (escaped) in a span, each escape but `\\` in a span of its own, so that it stands out. */
function bodySpan(text) {
  const span = element("span", "body");
  let from = 0;
  for (const match of text.matchAll(ESCAPE)) {
    if (match[0] === "\\\\") {
      continue; // a backslash the sender typed: plain text
    }
    span.append(text.slice(from, match.index), element("span", "escape", match[0]));
    from = match.index + match[0].length;
  }
  span.append(text.slice(from));
  return span;
}

function messageItem(line, onRetry) {
  const item = element("li", "message");
  const time = element("span", "time", localTime(line.time));
  const from = element("span", "from", `@${escapeText(line.from)}`);
  const body = bodySpan(escapeText(line.body));
  item.append(time, " (", from, "): ", body);
  if (line.kind === "message") {
    item.dataset.id = line.id;
    item.dataset.offset = String(line.offset);
    item.dataset.epoch = line.epoch;
    return item;
  }
  item.dataset.pubId = line.pubId;
  if (line.kind === "pending") {
    item.classList.add("pending");
    item.setAttribute("aria-label", `${item.textContent} (sending)`);
    return item;
  }
  item.classList.add("failed");
  const reason = element("span", "reason", `not sent: ${escapeInvisible(line.reason)}`);
  const retry = element("button", "retry", "Retry");
  retry.type = "button";
  retry.addEventListener("click", () => onRetry(line.pubId));
  item.append(reason, retry);
  return item;
}

function lineItem(line, onRetry) {
  if (line.kind === "date") {
    return element("li", "date", line.text);
  }
  if (line.kind === "notice") {
    return element("li", "notice", `${localTime(line.time)} ${escapeInvisible(line.text)}`);
  }
  return messageItem(line, onRetry);
}

/**
 * The conversation: `lines` (rooms.shown) as `li` items, reusing those already shown (by key), and
 * kept scrolled to the newest when it was there, or when `toBottom`.
 */
export function renderMessages(list, lines, onRetry, toBottom = false) {
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
  const existing = new Map([...list.children].map((item) => [item.dataset.key, item]));
  let previous = null;
  for (const line of lines) {
    let item = existing.get(line.key);
    existing.delete(line.key);
    if (item === undefined) {
      item = lineItem(line, onRetry);
      item.dataset.key = line.key;
    }
    const next = previous === null ? list.firstChild : previous.nextSibling;
    if (next !== item) {
      list.insertBefore(item, next);
    }
    previous = item;
  }
  for (const item of existing.values()) {
    item.remove();
  }
  if (atBottom || toBottom) {
    list.scrollTop = list.scrollHeight;
  }
}
