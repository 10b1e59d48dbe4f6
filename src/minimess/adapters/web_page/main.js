// The page's wiring: form and button events to the link and the rooms, and their changes to the view.

import { Link, sameOriginServer } from "./link.js";
import { readRoomsRecord, Rooms, ROOMS_KEY, roomsRecord, topicProblem } from "./rooms.js";
import { renderCountdown, renderMessages, renderNotices, renderRooms, renderState, renderTitle } from "./view.js";

const UID = /^[A-Za-z0-9_.-]{1,64}$/;
const UID_KEY = "minimess.uid";

const $ = (selector) => document.querySelector(selector);
const page = {
  login: $("#login"),
  uid: $("#uid"),
  token: $("#token"),
  loginError: $("#login-error"),
  state: $("#state"),
  countdown: $("#countdown"),
  reconnectNow: $("#reconnect-now"),
  notices: $("#notices"),
  chat: $("#chat"),
  join: $("#join"),
  room: $("#room"),
  joinError: $("#join-error"),
  rooms: $("#rooms"),
  title: $("#room-title"),
  leave: $("#leave"),
  messages: $("#messages"),
  compose: $("#compose"),
  line: $("#line"),
  composeError: $("#compose-error"),
};

const parameters = new URLSearchParams(location.search);
// The server that served the page: its Content-Security-Policy lets the page connect nowhere else.
const server = sameOriginServer(location);

// A failed line dropped with the oldest cannot be retried: the link forgets it.
const rooms = new Rooms("", (id) => link?.forget(id));
let link = null;
let linkState = { state: "idle" };
let countdown = null;

function storedUid() {
  try {
    return localStorage.getItem(UID_KEY) ?? "";
  } catch {
    return ""; // storage refused (private mode, a sandbox): the uid is typed again
  }
}

function storeUid(uid) {
  try {
    localStorage.setItem(UID_KEY, uid);
  } catch {
    // as above
  }
}

// Until the joined rooms and their positions are written to localStorage (a burst writes once).
const SAVE_DELAY_MS = 500;
let saveTimer = null;

/** Keep the joined rooms and their positions for this uid, soon (see README: what the browser keeps). */
function saveRoomsSoon() {
  if (saveTimer === null && link !== null) {
    saveTimer = setTimeout(saveRooms, SAVE_DELAY_MS);
  }
}

function saveRooms() {
  clearTimeout(saveTimer);
  saveTimer = null;
  if (link === null) {
    return;
  }
  try {
    localStorage.setItem(ROOMS_KEY + link.uid, roomsRecord(rooms.topics, link.positions));
  } catch {
    // storage refused: the rooms are joined again by hand after a reload
  }
}

/** The rooms kept for `uid`, each with its last position: joined again (attached stays). */
function restoreRooms(uid) {
  let kept = [];
  try {
    kept = readRoomsRecord(localStorage.getItem(ROOMS_KEY + uid));
  } catch {
    // as above
  }
  const attached = rooms.attached;
  for (const { topic, position } of kept) {
    rooms.join(topic);
    link.join(topic, position);
  }
  if (attached !== null) {
    rooms.attach(attached);
  } else if (kept.length > 0) {
    rooms.attach(kept[0].topic);
  }
}

function showState() {
  renderState(page, linkState, Date.now());
  page.login.hidden = !(linkState.state === "idle" || linkState.state === "refused");
  if (linkState.state === "connected") {
    page.token.value = ""; // not kept where anyone at this screen could read it back
  }
  if (linkState.state === "waiting" && countdown === null) {
    countdown = setInterval(() => renderCountdown(page.countdown, linkState, Date.now()), 100);
  } else if (linkState.state !== "waiting" && countdown !== null) {
    clearInterval(countdown);
    countdown = null;
  }
}

// What changed since the last render, drawn at the next animation frame (or within a second when
// the page is in the background, where frames do not come), however many messages came meanwhile.
const dirty = { rooms: false, conversation: false, toBottom: false };
let frame = null;
let fallback = null;

function render() {
  cancelAnimationFrame(frame);
  clearTimeout(fallback);
  frame = null;
  fallback = null;
  if (dirty.rooms) {
    renderRooms(page.rooms, rooms, attach);
    const unread = rooms.topics.reduce((sum, topic) => sum + rooms.room(topic).unread, 0);
    document.title = unread > 0 ? `(${unread}) minimess` : "minimess";
  }
  if (dirty.conversation) {
    const topic = rooms.attached;
    renderTitle(page.title, page.leave, topic);
    page.compose.hidden = topic === null;
    renderMessages(page.messages, topic === null ? [] : rooms.shown(topic), retry, dirty.toBottom);
  }
  dirty.rooms = dirty.conversation = dirty.toBottom = false;
}

function schedule() {
  if (frame === null) {
    frame = requestAnimationFrame(render);
    fallback = setTimeout(render, 250);
  }
}

function showRooms() {
  dirty.rooms = true;
  schedule();
}

function showConversation(toBottom = false) {
  dirty.conversation = true;
  dirty.toBottom ||= toBottom;
  schedule();
}

function showAll(toBottom = false) {
  showRooms();
  showConversation(toBottom);
}

/** Draw what is waiting now: before moving the focus into what a render shows. */
function showNow() {
  if (frame !== null) {
    render();
  }
}

// Notes from the server about no room in particular, the newest last.
const notices = [];
const MAX_NOTICES = 5;

function showNotice(text) {
  notices.push({ text, time: new Date() });
  notices.splice(0, notices.length - MAX_NOTICES);
  renderNotices(page.notices, notices);
}

const events = {
  state(state) {
    linkState = state;
    showState();
    if (state.state === "refused") {
      page.token.focus();
    }
  },
  message(message) {
    saveRoomsSoon();
    if (rooms.addMessage(message)) {
      if (message.topic === rooms.attached) {
        showConversation(message.from === rooms.uid);
      }
      showRooms();
    }
  },
  missed(topic, why) {
    saveRoomsSoon();
    rooms.addNotice(topic, `you may have missed messages (${why})`, new Date());
    showAll();
  },
  published(topic, id, position, ts) {
    // The pending line stays until the message comes back, in its place in the room's order
    // (unless it cannot come back any more).
    rooms.settle(topic, id, position, ts);
    showConversation();
  },
  failed(topic, id, reason) {
    if (rooms.room(topic) === undefined) {
      // Its room was left: the line went with it.
      events.notice(`a message to ${topic} was not sent: ${reason}`);
      return;
    }
    rooms.setPublishState(topic, id, reason);
    showAll();
  },
  pending(topic, id) {
    rooms.setPublishState(topic, id, null);
    showAll();
  },
  refusedTopic(topic, reason) {
    rooms.leave(topic);
    page.joinError.textContent = `cannot join ${topic}: ${reason}`;
    showAll(true);
  },
  notice(text) {
    showNotice(text);
  },
};

function connect(uid, token) {
  if (link !== null && link.uid === uid) {
    // A fresh token for the same uid: the link keeps its positions and what waits to be sent.
    link.start(token);
    return;
  }
  if (link !== null) {
    saveRooms();
    // What the other uid's link had not settled is not sent as this one: said on each line.
    const old = link.uid;
    const unsettled = link.unsettled();
    link.stop();
    for (const publish of unsettled) {
      const outcome = publish.sent ? "it may or may not have arrived" : "it was not sent";
      rooms.setPublishState(publish.topic, publish.id, `you connected as ${uid} before it was published as ${old}; ${outcome}`);
    }
  }
  rooms.uid = uid;
  page.chat.hidden = false;
  link = new Link({
    server,
    uid,
    token,
    events,
    WebSocket,
    fetch: (...args) => fetch(...args),
    setTimeout: (...args) => setTimeout(...args),
    clearTimeout: (...args) => clearTimeout(...args),
    getRandomValues: (array) => crypto.getRandomValues(array),
    origin: location.origin,
  });
  for (const topic of rooms.topics) {
    link.join(topic);
  }
  restoreRooms(uid);
  saveRooms();
  showAll(true);
  link.start();
}

function attach(topic) {
  rooms.attach(topic);
  page.composeError.textContent = "";
  showAll(true);
}

function leave(topic) {
  rooms.leave(topic);
  link?.leave(topic);
  saveRoomsSoon();
  showAll(true);
  showNow();
  page.room.focus();
}

/** Where typing goes next: the line when a room is attached, else the room to join. */
function focusTyping() {
  showNow();
  (rooms.attached === null ? page.room : page.line).focus();
}

function retry(id) {
  if (link !== null && !link.retry(id)) {
    // A line of another uid's link: sent as this uid now, as a new publish.
    const topic = rooms.topics.find((each) => rooms.ownLine(each, id)?.kind === "failed");
    const newId = topic === undefined ? null : link.publish(topic, rooms.ownLine(topic, id).body);
    if (newId !== null) {
      rooms.setPublishState(topic, id, null, newId);
      showConversation();
    }
  }
  focusTyping();
}

page.login.addEventListener("submit", (event) => {
  event.preventDefault();
  const uid = page.uid.value.trim();
  if (!UID.test(uid)) {
    page.loginError.textContent = "a uid is 1 to 64 of A-Z a-z 0-9 _ . - (no spaces)";
    page.uid.focus();
    return;
  }
  page.loginError.textContent = "";
  storeUid(uid);
  // The token is not kept: it is asked again on every visit.
  connect(uid, page.token.value.trim());
  page.room.focus();
});

page.reconnectNow.addEventListener("click", () => {
  link?.reconnectNow();
  focusTyping(); // the button hides at once
});

page.leave.addEventListener("click", () => {
  if (rooms.attached !== null) {
    leave(rooms.attached);
  }
});

page.join.addEventListener("submit", (event) => {
  event.preventDefault();
  const topic = page.room.value.trim();
  const problem = topicProblem(topic);
  if (problem !== null) {
    page.joinError.textContent = problem;
    return;
  }
  page.joinError.textContent = "";
  rooms.join(topic);
  link?.join(topic);
  saveRoomsSoon();
  page.room.value = "";
  showAll(true);
  showNow();
  page.line.focus();
});

page.room.addEventListener("input", () => {
  page.joinError.textContent = "";
});

page.compose.addEventListener("submit", (event) => {
  event.preventDefault();
  const topic = rooms.attached;
  const body = page.line.value;
  if (topic === null || body === "" || link === null) {
    return;
  }
  const tooLong = link.oversize(topic, body);
  if (tooLong !== null) {
    page.composeError.textContent = tooLong;
    return;
  }
  const id = link.publish(topic, body);
  if (id === null) {
    page.composeError.textContent = `${link.queueSize} messages wait to be sent already; nothing was sent`;
    return;
  }
  page.composeError.textContent = "";
  rooms.addPending(topic, id, body, new Date());
  page.line.value = "";
  showConversation(true);
  showNow(); // the line typed moves to the conversation at once
});

// The positions of the last moments, kept before the page goes.
addEventListener("pagehide", saveRooms);

page.line.addEventListener("input", () => {
  page.composeError.textContent = "";
});

const givenUid = parameters.get("uid");
page.uid.value = givenUid ?? storedUid();
showState();
showAll();
if (givenUid !== null && UID.test(givenUid)) {
  storeUid(givenUid);
  connect(givenUid, "");
  page.room.focus();
} else {
  if (givenUid !== null) {
    page.loginError.textContent = "the uid in the address is not valid: a uid is 1 to 64 of A-Z a-z 0-9 _ . -";
  }
  page.uid.focus();
}
