// The WebSocket link to a minimess server: connecting, backoff, positions, recovery and publishes (no DOM).

// The largest client frame a server takes until its `success` frame says (docs/protocol.md).
export const DEFAULT_MAX_MESSAGE_BYTES = 65536;
// Sends of one publish at most while its outcome stays unknown; then it is reported failed.
export const MAX_ATTEMPTS = 3;
// Handshake refusals that the same request would get again: shown, not retried.
const REFUSED = new Set([400, 401, 403, 404]);
const GOING_AWAY = 1001;
const TOKEN_EXPIRED = 4001;
// Error codes of a pub whose outcome is unknown, or that was dropped unread: sent again, same id.
const PUBLISH_TIMEOUT = "publish_timeout";
const RATE_LIMITED = "rate_limited";
// What oversize() assumes of a ref not given yet: longer than any this link gives.
const LONGEST_REF = "c-" + "9".repeat(15);
// Failures before `open` in a row, each whose probe said the handshake would pass (426), before the
// state says the server or a proxy refuses the WebSocket itself (an Origin or upgrade refusal).
const HIDDEN_REFUSALS = 3;
const ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** A message id: 22 random base64url characters (132 bits), from `getRandomValues`. */
export function newMessageId(getRandomValues) {
  const bytes = getRandomValues(new Uint8Array(22));
  return Array.from(bytes, (byte) => ID_ALPHABET[byte & 63]).join("");
}

/** The base URL of the server the page came from: ws(s)://<host>. */
export function sameOriginServer(location) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
}

// A name in a path segment: valid names need no escape (":" included), anything else gets one.
const segment = (name) => encodeURIComponent(name).replaceAll("%3A", ":");

/** The request path that connects as `uid` to `topics`, each with its position when it has one. */
export function subscribePath(uid, topics, positions) {
  const segments = [`/subscribe/id:${segment(uid)}`];
  for (const topic of topics) {
    const position = positions.get(topic);
    const at = position === undefined ? "" : `@${segment(position.epoch)}:${position.offset}`;
    segments.push(`/topic:${segment(topic)}${at}`);
  }
  return segments.join("");
}

function byteLength(text) {
  return new TextEncoder().encode(text).length;
}

/** Why `document` (a decoded server frame) cannot be read, or null when its fields have their types. */
export function frameProblem(document) {
  const string = (name) => typeof document[name] === "string";
  const optional = (name, check) => document[name] === undefined || document[name] === null || check(document[name]);
  const position = () =>
    optional("offset", Number.isInteger) && optional("epoch", (epoch) => typeof epoch === "string");
  switch (document.type) {
    case "message":
      if (!["id", "topic", "from", "body", "ts"].every(string)) {
        return "a message without a string id, topic, from, body or ts";
      }
      if (Number.isNaN(Date.parse(document.ts))) {
        return "a message whose ts is not a time";
      }
      return position() ? null : "a message whose offset or epoch has the wrong type";
    case "ack":
      return optional("ref", (ref) => typeof ref === "string") && position() ? null : "an ack with fields of the wrong type";
    case "subscribed":
    case "unsubscribed":
      return string("topic") && position() ? null : `a ${document.type} frame without a string topic`;
    case "error":
      return string("code") && optional("reason", (reason) => typeof reason === "string") && optional("ref", (ref) => typeof ref === "string")
        ? null
        : "an error frame with fields of the wrong type";
    default:
      return typeof document.type === "string" ? null : "a frame without a type";
  }
}

/** What to do about a handshake refusal, said after the server's reason; "" when nothing helps. */
function advice(status, reason) {
  if (status === 401) {
    return " (paste a token and press Connect)";
  }
  if (status === 403 && reason.startsWith("the token is for ")) {
    return " (use the uid the token is for, or a token for this uid)";
  }
  return "";
}

function pubFrame(topic, body, id, ref) {
  return JSON.stringify({ type: "pub", topic, body, id, ref });
}

/** The first line of a refusal's body, printable ASCII only and short: the server's reason. */
function firstLine(body) {
  const line = body.split(/\r?\n/, 1)[0] ?? "";
  const printable = line.replace(/[^ -~]/g, "?").slice(0, 200);
  return printable || "no reason given";
}

function closeReason(event) {
  if (event.code === GOING_AWAY) {
    return "the server is going away";
  }
  if (event.code === TOKEN_EXPIRED) {
    return "the token expired";
  }
  if (event.code === 1006 || event.code === 1005) {
    return "connection lost";
  }
  return `closed by the server: ${event.code} ${event.reason ?? ""}`.trimEnd();
}

/**
 * Keeps one WebSocket connection to a minimess server up, with the joined topics on it.
 *
 * Collaborators are given, so that tests run it without a browser: `WebSocket` (a constructor),
 * `fetch`, `setTimeout`/`clearTimeout`, `random` (uniform in [0, 1)), `now` (milliseconds) and
 * `getRandomValues`. `events` hears what the page shows:
 *   state({state, node, uid, attempt, reason, retryAt}) — idle, connecting, connected, waiting, refused;
 *   message(message) — a new message of a joined topic (copies dropped);
 *   missed(topic, why) — the topic's messages may have been missed;
 *   published(topic, id, position, ts) — an own publish was acknowledged (with its position, or
 *     null; ts null) or came back (at that position, at ts);
 *   failed(topic, id, reason) — an own publish was not published, or gave up (retry() sends it again);
 *   pending(topic, id) — a failed publish is on its way again;
 *   refusedTopic(topic, reason) — the server refused to subscribe: the topic is left;
 *   notice(text) — anything else the server said (error frames without a request).
 *
 * Topics go in the URL on every connect, each with the position of its last message (or where
 * its subscription started), so the server replays what came after it or answers
 * `recovered: false`. Publishes carry an id of their own, the same in every attempt; one whose
 * outcome is unknown (connection lost before the ack, `publish_timeout`, no ack in time) is sent
 * again with it after reconnecting.
 */
export class Link {
  constructor({
    server,
    uid,
    token = "",
    events,
    WebSocket,
    fetch,
    setTimeout,
    clearTimeout,
    random = Math.random,
    now = Date.now,
    getRandomValues,
    first = 0.5,
    cap = 5,
    queueSize = 100,
    ackTimeout = 10,
    rateLimitPause = 1,
    successTimeout = 10,
    silenceFloor = 10,
    origin = "",
  }) {
    this.server = server.replace(/\/+$/, "");
    this.uid = uid;
    this.token = token;
    this.events = events;
    this.WebSocket = WebSocket;
    this.fetch = fetch;
    this.setTimeout = setTimeout;
    this.clearTimeout = clearTimeout;
    this.random = random;
    this.now = now;
    this.getRandomValues = getRandomValues;
    this.first = first;
    this.cap = cap;
    this.queueSize = queueSize;
    this.ackTimeout = ackTimeout;
    this.rateLimitPause = rateLimitPause;
    this.successTimeout = successTimeout;
    // Seconds of silence that always pass for a server's: never judge a link dead sooner.
    this.silenceFloor = silenceFloor;
    // The server's `time` frames, every --tick seconds: a heartbeat once two have shown its pace.
    this.lastHeard = 0;
    this.lastTick = null;
    this.tickInterval = null;
    this.silenceTimer = null;
    this.origin = origin;

    this.state = "idle";
    // The joined topics, in the order joined; resubscribed on every connect.
    this.topics = new Set();
    // Per joined topic, the position of the last message handed over, or where it started.
    this.positions = new Map();
    // Failed attempts since the last success: the backoff's exponent.
    this.failures = 0;
    // The number of the next (or current) attempt since the last connection, as shown.
    this.attempt = 1;
    // The socket of the current attempt or connection, and whether its `success` came.
    this.socket = null;
    this.connected = false;
    // The timer of the wait before the next attempt.
    this.waitTimer = null;
    this.maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES;
    this.node = "";
    this.refs = 0;
    // Publishes by id, from publish() until acknowledged (or echoed) or failed.
    this.publishes = new Map();
    // Publishes to send, in order: new ones, and ones to send again (ahead of the new).
    this.outgoing = [];
    // This connection's refs of pub attempts, sub and unsub: what answers and errors refer to.
    this.requests = new Map();
    // The topics this connection's URL asked to recover, until answered: publishes wait for them.
    this.recovering = new Set();
    // Publishes reported failed, by id, so that retry() can send them again.
    this.failed = new Map();
    // Why the last attempt failed, shown while connecting again; null after a success.
    this.lastReason = null;
    // Failures before `open` in a row whose probe said 426 (see HIDDEN_REFUSALS).
    this.hiddenRefusals = 0;
    // The timer of a pause the server asked for (rate_limited): nothing is sent until it ends.
    this.pauseTimer = null;
    // Requests (sub) that the server dropped unread (rate_limited): sent again after the pause.
    this.dropped = [];
    // The timer that closes a connection opened but not greeted in time.
    this.successTimer = null;
    // Publishes in the order they were made: a publish sent again goes back to its place.
    this.sequence = 0;
    // Frames of this connection that could not be read (the first one is reported).
    this.badFrames = 0;
    // Set by stop(): a stopped link reports nothing any more.
    this.stopped = false;
  }

  /**
   * Connect (again), unless connected, connecting or stopped; with `token` when given (a fresh token
   * after a refusal): positions and publishes stay, and the waiting ones go once connected.
   */
  start(token = this.token) {
    if (!this.stopped && (this.state === "idle" || this.state === "refused")) {
      this.token = token;
      this.attempt = 1;
      this.failures = 0;
      this.connect();
    }
  }

  /** While waiting to reconnect: try now. */
  reconnectNow() {
    if (this.state === "waiting") {
      this.clearTimeout(this.waitTimer);
      this.waitTimer = null;
      this.connect();
    }
  }

  /** Close the connection for good; nothing is retried, and nothing reported any more. */
  stop() {
    this.stopped = true;
    for (const timer of [this.waitTimer, this.pauseTimer, this.successTimer, this.silenceTimer]) {
      this.clearTimeout(timer);
    }
    this.waitTimer = this.pauseTimer = this.successTimer = this.silenceTimer = null;
    for (const publish of this.publishes.values()) {
      this.stopTimer(publish);
    }
    const socket = this.socket;
    this.socket = null;
    this.connected = false;
    if (socket !== null) {
      socket.close(1000);
    }
    this.state = "idle";
  }

  /** The publishes not settled yet (waiting, or sent without an answer): {topic, id, sent}. */
  unsettled() {
    return [...this.publishes.values()].map(({ topic, id, attempts }) => ({ topic, id, sent: attempts > 0 }));
  }

  /** Join `topic`; from `position` on when given (kept from an earlier visit): recovered. */
  join(topic, position = null) {
    if (this.topics.has(topic)) {
      return;
    }
    this.topics.add(topic);
    if (position !== null) {
      this.positions.set(topic, position);
    }
    if (this.connected) {
      this.request({ type: "sub", topic }, { kind: "sub", topic });
    }
  }

  leave(topic) {
    if (!this.topics.delete(topic)) {
      return;
    }
    // What comes while away was not wanted: joining again starts afresh.
    this.positions.delete(topic);
    if (this.connected) {
      this.request({ type: "unsub", topic }, { kind: "unsub", topic });
    }
    // Publishes to it that wait are not sent (those in flight get their answer); failed ones go.
    for (const id of this.outgoing) {
      const publish = this.publishes.get(id);
      if (publish?.topic === topic) {
        const earlier = publish.attempts > 0 ? "an earlier attempt may or may not have arrived" : "it was not sent";
        this.fail(publish, `you left ${topic}; ${earlier}`);
      }
    }
    for (const [id, publish] of this.failed) {
      if (publish.topic === topic) {
        this.failed.delete(id);
      }
    }
  }

  /** Forget the failed publish `id` (its line is gone): retry() cannot send it any more. */
  forget(id) {
    this.failed.delete(id);
  }

  /** Why a message of `body` to `topic` cannot be sent (over the server's limit), or null. */
  oversize(topic, body) {
    const size = byteLength(pubFrame(topic, body, "A".repeat(22), LONGEST_REF));
    if (size <= this.maxMessageBytes) {
      return null;
    }
    return `${this.tooLong(size, body)}; nothing was sent`;
  }

  /** A publish whose frame is `size` bytes is over the limit: by how much, in a person's terms. */
  tooLong(size, body) {
    const envelope = size - byteLength(body);
    return (
      `too long by ${size - this.maxMessageBytes} bytes (the server takes at most ${this.maxMessageBytes} ` +
      `bytes per message, counted in UTF-8, with about ${envelope} for the message's envelope)`
    );
  }

  /**
   * Publish `body` on `topic`: its message id, or null when too many wait already (queueSize).
   *
   * It goes now when connected, else once the connection is back.
   */
  publish(topic, body) {
    const waiting = this.outgoing.filter((id) => this.publishes.get(id).attempts === 0).length;
    if (waiting >= this.queueSize) {
      return null;
    }
    const id = newMessageId(this.getRandomValues);
    const seq = ++this.sequence;
    this.publishes.set(id, { id, topic, body, seq, attempts: 0, ref: null, timer: null, cause: "" });
    this.outgoing.push(id);
    this.flush();
    return id;
  }

  /** Send a failed publish again, with the same id: false when this link does not know it. */
  retry(id) {
    const publish = this.failed.get(id);
    if (publish === undefined || this.stopped) {
      return false;
    }
    this.failed.delete(id);
    publish.attempts = 0;
    publish.cause = "";
    this.publishes.set(id, publish);
    this.outgoing.push(id);
    this.events.pending(publish.topic, id);
    this.flush();
    return true;
  }

  // ---- connecting

  connect() {
    this.waitTimer = null;
    if (this.stopped) {
      return;
    }
    this.setState({ state: "connecting", attempt: this.attempt, reason: this.lastReason ?? "" });
    const topics = [...this.topics];
    const since = new Map([...this.positions].filter(([topic]) => this.topics.has(topic)));
    const url = this.url(topics, since);
    let socket;
    try {
      socket = new this.WebSocket(url);
    } catch (error) {
      this.failedAttempt(`cannot connect to ${this.server}: ${error.message ?? error}`);
      return;
    }
    this.socket = socket;
    let opened = false;
    let greeted = false;
    // A server that does not greet in time is as good as none: one that never answers the
    // handshake (frozen, or a network that drops packets, which browsers wait on for minutes), or
    // that opens and never sends `success`.
    this.successTimer = this.setTimeout(() => {
      this.successTimer = null;
      if (this.stopped || this.socket !== socket || greeted) {
        return;
      }
      if (opened) {
        this.abandon(socket, this.noAnswer(this.successTimeout));
      } else {
        this.socket = null;
        socket.close(1000);
        this.failedAttempt(this.noAnswer(this.successTimeout));
      }
    }, this.successTimeout * 1000);
    socket.onopen = () => {
      if (this.socket !== socket) {
        return;
      }
      opened = true;
      this.hiddenRefusals = 0;
    };
    socket.onmessage = (event) => {
      if (this.socket !== socket) {
        return;
      }
      this.lastHeard = this.now();
      if (!greeted) {
        greeted = true;
        this.clearTimeout(this.successTimer);
        this.successTimer = null;
        this.greeted(event.data, topics, since);
        return;
      }
      this.frame(event.data);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) {
        return;
      }
      this.clearTimeout(this.successTimer);
      this.successTimer = null;
      this.socket = null;
      const wasConnected = this.connected;
      this.connectionEnded();
      if (wasConnected) {
        this.retryLater(closeReason(event));
      } else if (opened) {
        this.failedAttempt(closeReason(event));
      } else {
        this.probe(url);
      }
    };
  }

  /**
   * A `time` frame: the server's pace, once two have come, makes silence tell.
   *
   * Browsers neither send pings nor say when a connection died without a close (a laptop asleep,
   * a network changed, a frozen server): the page would show "connected" for many minutes. A server
   * with ticks on (--tick, default 5 s) writes at least once per tick, so three ticks of silence
   * (and never under `silenceFloor`) mean the connection is dead: it is closed and made again,
   * rooms recovering from their positions. With ticks off, only an unanswered publish tells.
   */
  onTick() {
    const now = this.now();
    if (this.lastTick !== null) {
      this.tickInterval = now - this.lastTick;
      if (this.silenceTimer === null) {
        this.watchSilence(this.socket);
      }
    }
    this.lastTick = now;
  }

  silenceLimit() {
    return Math.max(3 * this.tickInterval, this.silenceFloor * 1000);
  }

  watchSilence(socket) {
    const limit = this.silenceLimit();
    const wait = Math.max(this.lastHeard + limit - this.now(), 0) + 1;
    this.silenceTimer = this.setTimeout(() => {
      this.silenceTimer = null;
      if (this.stopped || this.socket !== socket || !this.connected) {
        return;
      }
      if (this.now() - this.lastHeard >= this.silenceLimit()) {
        this.abandon(socket, this.noAnswer(Math.round(this.silenceLimit() / 1000)));
      } else {
        this.watchSilence(socket);
      }
    }, wait);
  }

  noAnswer(seconds) {
    return `no answer from the server in ${seconds} s`;
  }

  /** Give up on `socket`, the current one, as dead: close it and connect again after a wait. */
  abandon(socket, reason) {
    this.socket = null;
    socket.close(1000);
    const wasConnected = this.connected;
    this.connectionEnded(reason);
    if (wasConnected) {
      this.retryLater(reason);
    } else {
      this.failedAttempt(reason);
    }
  }

  url(topics, since) {
    const query = this.token === "" ? "" : `?token=${encodeURIComponent(this.token)}`;
    return this.server + subscribePath(this.uid, topics, since) + query;
  }

  /**
   * A handshake that failed before `open`: the WebSocket API does not tell why, so the same URL is
   * asked with a plain GET, which the server checks the same way (a 4xx that would come again
   * is shown and not retried; 426, asking for the upgrade, means the handshake would pass, but
   * for its Origin, which a same-origin GET does not send, and for a proxy's upgrade handling).
   */
  probe(url) {
    const httpUrl = url.replace(/^ws/, "http");
    let answer;
    try {
      answer = this.fetch(httpUrl, { cache: "no-store", credentials: "omit", redirect: "error" });
    } catch (error) {
      answer = Promise.reject(error);
    }
    Promise.resolve(answer)
      .then(async (response) => {
        const reason = firstLine(await response.text().catch(() => ""));
        if (REFUSED.has(response.status)) {
          this.hiddenRefusals = 0;
          this.refused(`the server refused: HTTP ${response.status}: ${reason}${advice(response.status, reason)}`);
        } else if (response.status === 426) {
          this.hiddenRefusals += 1;
          this.failedAttempt(
            this.hiddenRefusals >= HIDDEN_REFUSALS
              ? "the server refuses the WebSocket though a plain request passes: is this page's origin " +
                  `(${this.origin}) allowed (--allowed-origin), and does any proxy pass WebSocket upgrades?`
              : "the connection was lost during the handshake",
          );
        } else {
          this.hiddenRefusals = 0;
          this.failedAttempt(`the server refused the connection: HTTP ${response.status}: ${reason}`);
        }
      })
      .catch(() => {
        this.hiddenRefusals = 0;
        this.failedAttempt(`cannot reach ${this.server}`);
      });
  }

  refused(reason) {
    if (this.stopped || this.state !== "connecting") {
      return;
    }
    this.lastReason = null;
    this.setState({ state: "refused", reason });
  }

  failedAttempt(reason) {
    if (this.stopped || this.state !== "connecting") {
      return; // stopped meanwhile
    }
    this.attempt += 1;
    this.retryLater(reason);
  }

  retryLater(reason) {
    if (this.stopped) {
      return;
    }
    this.lastReason = reason;
    const bound = Math.min(this.cap, this.first * 2 ** this.failures);
    // Stop growing once at the cap, so the exponent cannot overflow after a long outage.
    if (bound < this.cap) {
      this.failures += 1;
    }
    const delay = this.random() * bound;
    this.setState({ state: "waiting", attempt: this.attempt, reason, retryAt: this.now() + delay * 1000 });
    this.waitTimer = this.setTimeout(() => this.connect(), delay * 1000);
  }

  greeted(data, topics, since) {
    const greeting = parse(data);
    if (greeting === null || greeting.type !== "success") {
      this.abandon(this.socket, "the server's first frame was not success");
      return;
    }
    const limit = greeting.max_message_bytes;
    this.maxMessageBytes = Number.isInteger(limit) && limit > 0 ? limit : DEFAULT_MAX_MESSAGE_BYTES;
    this.node = String(greeting.node ?? "?");
    this.connected = true;
    this.failures = 0;
    this.attempt = 1;
    this.lastReason = null;
    this.badFrames = 0;
    this.recovering = new Set(since.keys());
    this.setState({ state: "connected", node: this.node, uid: this.uid });
    // What changed during the handshake, and a quiet sub for each URL topic without a position:
    // the server holds it already, and its answer says where it starts.
    for (const topic of this.topics) {
      if (!topics.includes(topic)) {
        this.request({ type: "sub", topic }, { kind: "sub", topic });
      } else if (!since.has(topic)) {
        this.request({ type: "sub", topic }, { kind: "sub", topic, quiet: true });
      }
    }
    for (const topic of topics) {
      if (!this.topics.has(topic)) {
        this.request({ type: "unsub", topic }, { kind: "unsub", topic });
      }
    }
    this.flush();
  }

  connectionEnded(cause = "connection lost before the ack") {
    this.connected = false;
    this.clearTimeout(this.silenceTimer);
    this.silenceTimer = null;
    this.lastTick = this.tickInterval = null;
    this.recovering.clear();
    // Requests dropped unread were this connection's: the next URL subscribes anew.
    this.dropped = [];
    // Publishes in flight: their outcome is unknown; they go again first, in the order sent.
    const inFlight = [];
    for (const request of this.requests.values()) {
      if (request.kind === "pub" && request.ref === request.publish.ref) {
        inFlight.push(request.publish);
      }
    }
    this.requests.clear();
    this.unanswered(inFlight, cause);
  }

  // ---- frames

  frame(data) {
    const document = parse(data);
    const problem = document === null ? "not a JSON object" : frameProblem(document);
    if (problem !== null) {
      // Dropped; said once per connection, so that a server gone wrong cannot flood the page.
      this.badFrames += 1;
      if (this.badFrames === 1) {
        this.events.notice(`the server sent a frame this page cannot read (${problem}); it was dropped`);
      }
      return;
    }
    switch (document.type) {
      case "message":
        this.onMessage(document);
        break;
      case "ack":
        this.onAck(document);
        break;
      case "error":
        this.onError(document);
        break;
      case "subscribed":
        this.onSubscribed(document);
        break;
      case "unsubscribed":
        this.forgetRequest("unsub", document.topic);
        break;
      case "time":
        this.onTick();
        break;
      default:
        break; // anything newer
    }
  }

  onMessage(document) {
    const { topic, epoch, offset } = document;
    if (typeof topic !== "string" || !this.topics.has(topic)) {
      return;
    }
    this.echoed(document);
    if (typeof epoch === "string" && Number.isInteger(offset)) {
      const kept = this.positions.get(topic);
      if (kept !== undefined && kept.epoch === epoch && offset <= kept.offset) {
        return; // a copy of one already handed over
      }
      if (kept !== undefined && kept.epoch !== epoch) {
        this.events.missed(topic, "the topic's log changed");
      }
      this.positions.set(topic, { epoch, offset });
    }
    this.events.message(document);
  }

  onSubscribed(document) {
    const { topic } = document;
    const position =
      typeof document.epoch === "string" && Number.isInteger(document.offset)
        ? { epoch: document.epoch, offset: document.offset }
        : null;
    if (this.recovering.delete(topic)) {
      if (this.topics.has(topic) && document.recovered !== true) {
        // Nothing from before comes: go on from where the server stands now.
        if (position === null) {
          this.positions.delete(topic);
        } else {
          this.positions.set(topic, position);
        }
        this.events.missed(topic, "the server could not recover them after the reconnect");
      }
      if (this.recovering.size === 0) {
        this.flush();
      }
      return;
    }
    this.forgetRequest("sub", topic);
    if (position !== null && this.topics.has(topic)) {
      const kept = this.positions.get(topic);
      // Messages up to `position` came before this answer; later ones follow it.
      if (kept === undefined || kept.epoch !== position.epoch || kept.offset < position.offset) {
        this.positions.set(topic, position);
      }
    }
  }

  onAck(document) {
    // An earlier attempt's ack counts as well: the message is published, with the same id.
    const request = this.requests.get(String(document.ref));
    this.requests.delete(String(document.ref));
    if (request?.kind === "pub" && this.publishes.get(request.publish.id) === request.publish) {
      const { epoch, offset } = document;
      this.published(request.publish, typeof epoch === "string" && Number.isInteger(offset) ? { epoch, offset } : null);
    }
  }

  /** A message with the id of an own publish came back (a copy too): that one is published. */
  echoed(document) {
    const publish = this.publishes.get(document.id);
    if (publish !== undefined && publish.attempts > 0) {
      const { epoch, offset } = document;
      this.published(publish, typeof epoch === "string" && Number.isInteger(offset) ? { epoch, offset } : null, document.ts);
    }
  }

  onError(document) {
    const ref = String(document.ref);
    const code = document.code;
    const reason = `${code}: ${document.reason}`;
    const request = this.requests.get(ref);
    this.requests.delete(ref);
    if (code === RATE_LIMITED && request !== undefined) {
      this.droppedUnread(request);
    } else if (request?.kind === "pub") {
      const { publish } = request;
      if (publish.ref !== ref || !this.publishes.has(publish.id)) {
        return; // an earlier attempt's answer: the attempt in flight decides
      }
      if (code === PUBLISH_TIMEOUT) {
        this.unanswered([publish], reason);
      } else {
        this.fail(publish, reason);
      }
    } else if (request?.kind === "sub" && !request.quiet) {
      this.topics.delete(request.topic);
      this.positions.delete(request.topic);
      this.events.refusedTopic(request.topic, reason);
    } else if (request === undefined) {
      this.events.notice(`the server says: ${reason}`);
    }
  }

  /**
   * The server dropped `request` unread (rate_limited): everything waits for one pause, then it
   * goes again, a publish in its place among the others (ahead of any made after it), same id.
   */
  droppedUnread(request) {
    if (request.kind === "pub") {
      const { publish } = request;
      if (publish.ref !== request.ref || this.publishes.get(publish.id) !== publish) {
        return; // an earlier attempt's answer: the attempt in flight decides
      }
      this.stopTimer(publish);
      publish.ref = null;
      publish.attempts -= 1;
      this.requeue(publish);
    } else {
      this.dropped.push(request);
    }
    if (this.pauseTimer === null) {
      this.pauseTimer = this.setTimeout(() => {
        this.pauseTimer = null;
        this.flush();
      }, this.rateLimitPause * 1000);
    }
  }

  /** Put `publish` back among those to send, in the order they were made. */
  requeue(publish) {
    this.dropOutgoing(publish.id);
    const later = this.outgoing.findIndex((id) => (this.publishes.get(id)?.seq ?? Infinity) > publish.seq);
    this.outgoing.splice(later < 0 ? this.outgoing.length : later, 0, publish.id);
  }

  // ---- publishes

  published(publish, position, ts = null) {
    this.stopTimer(publish);
    this.publishes.delete(publish.id);
    this.dropOutgoing(publish.id);
    this.events.published(publish.topic, publish.id, position, ts);
  }

  fail(publish, reason) {
    this.stopTimer(publish);
    this.publishes.delete(publish.id);
    this.dropOutgoing(publish.id);
    this.failed.set(publish.id, publish);
    this.events.failed(publish.topic, publish.id, reason);
  }

  /** Attempts of `publishes` ended without an answer: sent again (same id), or given up. */
  unanswered(publishes, cause) {
    const again = [];
    for (const publish of publishes) {
      this.stopTimer(publish);
      publish.ref = null;
      publish.cause = cause;
      if (publish.attempts < MAX_ATTEMPTS) {
        again.push(publish.id);
      } else {
        const attempts = publish.attempts > 1 ? `${publish.attempts} attempts` : "1 attempt";
        this.fail(publish, `${cause}, after ${attempts}; it may or may not have arrived`);
      }
    }
    this.outgoing.unshift(...again);
    this.flush();
  }

  stopTimer(publish) {
    if (publish.timer !== null) {
      this.clearTimeout(publish.timer);
      publish.timer = null;
    }
  }

  dropOutgoing(id) {
    this.outgoing = this.outgoing.filter((other) => other !== id);
  }

  /** Send what waits, once connected, the recoveries answered and no pause asked for. */
  flush() {
    if (this.stopped || !this.connected || this.pauseTimer !== null) {
      return;
    }
    for (const request of this.dropped.splice(0)) {
      if (request.kind === "sub" ? this.topics.has(request.topic) : !this.topics.has(request.topic)) {
        const { kind, ref, ...rest } = request;
        this.request({ type: kind, topic: request.topic }, { kind, ...rest });
      }
    }
    if (this.recovering.size > 0) {
      return;
    }
    while (this.outgoing.length > 0 && this.connected) {
      const publish = this.publishes.get(this.outgoing.shift());
      if (publish === undefined) {
        continue;
      }
      const ref = `c-${++this.refs}`;
      const frame = pubFrame(publish.topic, publish.body, publish.id, ref);
      const size = byteLength(frame);
      if (size > this.maxMessageBytes) {
        // The limit may be lower than when it was typed (another server): sent, it would close
        // the connection, again after every reconnect.
        const earlier = publish.attempts > 0 ? "an earlier attempt may or may not have arrived" : "nothing was sent";
        this.fail(publish, `${this.tooLong(size, publish.body)}; ${earlier}`);
        continue;
      }
      publish.ref = ref;
      publish.attempts += 1;
      this.requests.set(ref, { kind: "pub", ref, publish });
      const socket = this.socket;
      // No answer in time: the connection is taken for dead (a frozen server, a lost network
      // that no close reports); the next one sends the publish again, same id.
      publish.timer = this.setTimeout(() => {
        publish.timer = null;
        if (publish.ref === ref && this.publishes.get(publish.id) === publish && this.socket === socket) {
          this.abandon(socket, this.noAnswer(this.ackTimeout));
        }
      }, this.ackTimeout * 1000);
      socket.send(frame);
    }
  }

  request(frame, request) {
    const ref = `c-${++this.refs}`;
    this.requests.set(ref, { ...request, ref });
    this.socket.send(JSON.stringify({ ...frame, ref }));
  }

  /** The server answered the oldest request of `kind` for `topic` (answers carry no ref). */
  forgetRequest(kind, topic) {
    for (const [ref, request] of this.requests) {
      if (request.kind === kind && request.topic === topic) {
        this.requests.delete(ref);
        return;
      }
    }
  }

  setState(state) {
    if (this.stopped) {
      return;
    }
    this.state = state.state;
    this.events.state(state);
  }
}

function parse(data) {
  try {
    const document = JSON.parse(data);
    return document !== null && typeof document === "object" && !Array.isArray(document) ? document : null;
  } catch {
    return null;
  }
}
