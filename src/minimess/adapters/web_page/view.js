// What the page shows: the connection state, the room list and the conversation, written with textContent only.

import { localTime } from "./rooms.js";
import { escapeInvisible, visibleParts } from "./visible_text.js";

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

/**
 * The words for a link state (see link.js): they change only when the state or its reason does, so
 * that a screen reader reads them once (the countdown is apart: countdownText).
 */
export function stateText(state) {
  switch (state.state) {
    case "connected":
      return `connected to ${escapeInvisible(state.node)} as ${state.uid}`;
    case "connecting":
      return state.attempt > 1 && state.reason
        ? `connecting… (attempt ${state.attempt}: ${escapeInvisible(state.reason)})`
        : "connecting…";
    case "waiting":
      return `reconnecting (attempt ${state.attempt}: ${escapeInvisible(state.reason)})`;
    case "refused":
      return escapeInvisible(state.reason);
    default:
      return "not connected";
  }
}

/** The time left until the next attempt while waiting (`now` in milliseconds), or "". */
export function countdownText(state, now) {
  if (state.state !== "waiting") {
    return "";
  }
  return `retry in ${Math.max(0, (state.retryAt - now) / 1000).toFixed(1)} s`;
}

function setText(node, text) {
  if (node.textContent !== text) {
    node.textContent = text;
  }
}

/** `#state` (only when its words change), the countdown beside it and the reconnect button. */
export function renderState({ state: stateElement, countdown, reconnectNow }, state, now) {
  if (stateElement.dataset.state !== state.state) {
    stateElement.dataset.state = state.state;
  }
  const text = stateText(state);
  setText(stateElement, text);
  if (stateElement.title !== text) {
    stateElement.title = text; // the whole of it, when the header cuts it short
  }
  renderCountdown(countdown, state, now);
  reconnectNow.hidden = state.state !== "waiting";
}

/** Only the countdown, outside the live region: what changes ten times a second while waiting. */
export function renderCountdown(countdown, state, now) {
  setText(countdown, countdownText(state, now));
  countdown.hidden = state.state !== "waiting";
}

/** The attached room's name (cut short with its whole in `title`) and its Leave button. */
export function renderTitle(title, leaveButton, topic) {
  const text = topic === null ? "no room: join one" : topic;
  setText(title, text);
  title.title = topic === null ? "" : topic;
  leaveButton.hidden = topic === null;
  leaveButton.setAttribute("aria-label", topic === null ? "leave" : `leave ${topic}`);
}

/**
 * The room list: one `li[data-topic]` per room, kept across renders so that focus stays on its
 * buttons; `onAttach(topic)` is called on a click of its name. Leaving is the conversation's Leave
 * button (renderTitle), away from the list that Tab goes through.
 */
export function renderRooms(list, rooms, onAttach) {
  const existing = new Map([...list.children].map((item) => [item.dataset.topic, item]));
  const items = [];
  for (const topic of rooms.topics) {
    const room = rooms.room(topic);
    let item = existing.get(topic);
    existing.delete(topic);
    if (item === undefined) {
      item = element("li");
      item.dataset.topic = topic;
      const name = element("button", "room", topic);
      name.type = "button";
      name.title = topic; // the whole name, when the list cuts it short
      name.addEventListener("click", () => onAttach(topic));
      const unread = element("span", "unread");
      item.append(name, unread);
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
    items.push(item);
  }
  arrange(list, items, existing.values());
}

/**
 * Make `items` the children of `list`, in this order, moving only those out of place (a moved
 * element loses focus), and remove the `stale` ones.
 */
function arrange(list, items, stale) {
  let previous = null;
  for (const item of items) {
    const next = previous === null ? list.firstChild : previous.nextSibling;
    if (next !== item) {
      list.insertBefore(item, next);
    }
    previous = item;
  }
  for (const item of stale) {
    item.remove();
  }
}

/** `text` in a span of `className` as the page shows it, each escape in a span of its own. */
function textSpan(className, text) {
  const span = element("span", className);
  span.dir = "auto"; // a right-to-left text keeps its punctuation on its own side
  for (const part of visibleParts(text)) {
    span.append(part.escape ? element("span", "escape", part.text) : part.text);
  }
  return span;
}

function messageItem(line, onRetry) {
  const item = element("li", "message");
  const time = element("span", "time", localTime(line.time));
  const from = textSpan("from", `@${line.from}`);
  const body = textSpan("body", line.body);
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

// The keys of the lines each conversation list shows, in order (the list's children's `data-key`).
const shownKeys = new WeakMap();

/**
 * How `keys` follow from `shown` when lines only came at the end and went at the start (a room's
 * oldest lines are forgotten), with at most one new date line first: `{drop, prepend, append}`
 * (counts of the old ones to remove, of the new ones before and after those kept), or null.
 */
export function appendOnly(shown, keys) {
  if (shown.length === 0) {
    return null;
  }
  for (const prepend of [0, 1]) {
    const drop = shown.indexOf(keys[prepend]);
    if (drop < 0 || (prepend === 1 && !keys[0].startsWith("d:"))) {
      continue;
    }
    const kept = shown.length - drop;
    if (keys.length - prepend < kept) {
      return null;
    }
    for (let i = 0; i < kept; i += 1) {
      if (shown[drop + i] !== keys[prepend + i]) {
        return null;
      }
    }
    return { drop, prepend, append: keys.length - prepend - kept };
  }
  return null;
}

/**
 * The conversation: `lines` (rooms.shown) as `li` items. New lines at the end are appended and
 * forgotten ones at the start removed, without touching the others; any other change reuses the
 * items already shown (by key). The list stays scrolled to the newest when the person was there (its
 * scroll position is read once, before anything changes), or when `toBottom`.
 */
export function renderMessages(list, lines, onRetry, toBottom = false) {
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
  const keys = lines.map((line) => line.key);
  const shown = shownKeys.get(list) ?? [];
  const make = (line) => {
    const item = lineItem(line, onRetry);
    item.dataset.key = line.key;
    return item;
  };
  const change = appendOnly(shown, keys);
  if (change !== null) {
    for (let i = 0; i < change.drop; i += 1) {
      list.firstElementChild.remove();
    }
    list.prepend(...lines.slice(0, change.prepend).map(make));
    list.append(...lines.slice(lines.length - change.append).map(make));
  } else {
    const existing = new Map([...list.children].map((item) => [item.dataset.key, item]));
    const items = lines.map((line) => {
      const item = existing.get(line.key) ?? make(line);
      existing.delete(line.key);
      return item;
    });
    arrange(list, items, existing.values());
  }
  shownKeys.set(list, keys);
  if (atBottom || toBottom) {
    list.scrollTop = list.scrollHeight;
  }
}

/** The server's notes about no room in particular (`{text, time}`, the newest last). */
export function renderNotices(list, notices) {
  const items = notices.map((notice) => `${localTime(notice.time)} ${escapeInvisible(notice.text)}`);
  list.replaceChildren(...items.map((text) => element("li", "notice", text)));
  list.hidden = notices.length === 0;
}
