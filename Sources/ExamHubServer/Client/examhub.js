// examhub.js: the ExamHub browser client (wire contract v1, PROTOCOL.md). One ES module, no dependencies.
//
//   import { ExamHubClient, ExamSession, Telemetry, Chat, ProctorSession } from "/client/examhub.js";
//   const hub = new ExamHubClient({ token });          // url defaults to /v1/socket next to this file
//   await hub.connect();
//   const exam = new ExamSession(hub, { examId: "e1" });
//   const state = await exam.join();                    // questions, answers (server + unsent local ones)
//   exam.answer("q1", "B");                             // debounced, queued, persisted, retried until acked
//
// ExamHubClient: one socket; `hello` authentication (browsers cannot set headers), request/reply by `id` with
// timeouts, reconnects with exponential backoff and jitter, resubscribes with `since {epoch, seq}` and reports
// `resync` when the hub could not recover a channel, server-time offset. It is an EventTarget: `open`, `close`,
// `state`, `event` (every server event) and one event per server event type (`attempt.paused`, `chat.delta`...),
// each a CustomEvent whose `detail` is the frame.

export const SUBPROTOCOL = "examhub.v1.json";
export const VERSION = "1.0.0";

/** An error reply of the hub (`code` is one of PROTOCOL.md's error codes) or a client-side failure
 *  (`timeout`, `unavailable` when the socket closed before the reply). */
export class ExamHubError extends Error {
  constructor(code, message, details) {
    super(message || code);
    this.name = "ExamHubError";
    this.code = code;
    this.details = details;
  }
}

/** Delay before reconnect number `attempt` (0-based): exponential from `baseMs` by `factor` up to `maxMs`, of
 *  which the `jitter` fraction is random (0.5: between half and all of it), so that a hub restart does not bring
 *  every browser back in the same millisecond. */
export function backoffDelay(attempt, options = {}) {
  const { baseMs = 500, maxMs = 30000, factor = 2, jitter = 0.5, random = Math.random } = options;
  const ceiling = Math.min(maxMs, baseMs * Math.pow(factor, Math.max(0, attempt)));
  return Math.round(ceiling * (1 - jitter) + random() * ceiling * jitter);
}

function defaultSocketURL() {
  try {
    const u = new URL("../v1/socket", import.meta.url);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    return u.toString();
  } catch {
    return "ws://127.0.0.1:8080/v1/socket";
  }
}

function randomId(prefix) {
  const bytes = new Uint8Array(8);
  (globalThis.crypto || { getRandomValues: (b) => b.map(() => Math.random() * 256) }).getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** One hub socket. Options: `url`, `token` (a string, or a function returning one or a Promise of one: called
 *  on every (re)connect, so a fresh token can be fetched), `requestTimeoutMs` (10 s), `backoff`
 *  ({baseMs, maxMs, factor, jitter}), `reconnect` (true), `WebSocket` (for tests), `heartbeat` (true: a `ping`
 *  op every `heartbeatSec` of `hello`, which also refreshes the server-time offset and detects dead sockets). */
export class ExamHubClient extends EventTarget {
  constructor(options = {}) {
    super();
    this.url = options.url || defaultSocketURL();
    this.token = options.token;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10000;
    this.backoff = options.backoff || {};
    this.reconnect = options.reconnect ?? true;
    this.heartbeat = options.heartbeat ?? true;
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    /** `idle` | `connecting` | `open` | `offline` (waiting to reconnect) | `closed` (by `close()` or for good). */
    this.state = "idle";
    /** Server time minus local time, in ms (from `hello` and `ping`): `serverNow()` uses it. */
    this.serverTimeOffsetMs = 0;
    /** The `hello` reply of the current socket: `{connId, user, serverTime, heartbeatSec}`. */
    this.session = null;
    /** Reconnects so far since the last successful `hello`. */
    this.attempt = 0;
    this.channels = new Map(); // ch -> {epoch, seq}
    this._nextId = 1;
    this._pending = new Map(); // id -> {resolve, reject, timer, op}
    this._ws = null;
    this._retryTimer = null;
    this._pingTimer = null;
    this._connectWaiters = [];
    this._everOpened = false;
    this._closedByUser = false;
    this._onOnline = () => {
      // Chromium fires `online` on a page being left while `navigator.onLine` is still false: ignore that one.
      if (this.state === "offline" && !this._leaving && globalThis.navigator?.onLine !== false) this._connectNow();
    };
    this._leaving = false;
    this._onPageHide = (e) => {
      this._leaving = !e.persisted; // no new sockets from a page that is going away (bfcache pages come back)
    };
    this._onPageShow = () => {
      this._leaving = false;
      if (this.state === "offline") this._connectNow();
    };
    this._onOffline = () => this._drop(1006, "browser offline"); // do not wait for TCP to notice
    if (globalThis.addEventListener) {
      globalThis.addEventListener("online", this._onOnline);
      globalThis.addEventListener("offline", this._onOffline);
      globalThis.addEventListener("pagehide", this._onPageHide);
      globalThis.addEventListener("pageshow", this._onPageShow);
    }
  }

  /** Server time now, as ms since 1970 (for countdowns: the hub owns the clock). */
  serverNow() {
    return Date.now() + this.serverTimeOffsetMs;
  }

  get isOpen() {
    return this.state === "open";
  }

  /** Opens the socket and says `hello`; resolves with the `hello` data once authenticated. Reconnects by itself
   *  afterwards; listen to `open` for every (re)connection. */
  connect() {
    this._closedByUser = false;
    if (this.state === "open") return Promise.resolve(this.session);
    const p = new Promise((resolve, reject) => this._connectWaiters.push({ resolve, reject }));
    if (this.state !== "connecting") this._connectNow();
    return p;
  }

  /** Closes the socket for good (no reconnect); pending requests fail with `unavailable`. */
  close(code = 1000, reason = "client closed") {
    this._closedByUser = true;
    clearTimeout(this._retryTimer);
    this._setState("closed");
    if (this._ws) this._ws.close(code, reason);
    if (globalThis.removeEventListener) {
      globalThis.removeEventListener("online", this._onOnline);
      globalThis.removeEventListener("offline", this._onOffline);
      globalThis.removeEventListener("pagehide", this._onPageHide);
      globalThis.removeEventListener("pageshow", this._onPageShow);
    }
  }

  /** Sends `{op, id, ...fields}` and resolves with the reply's `data`, or rejects with an `ExamHubError` (the
   *  hub's error, `timeout` after `timeoutMs`, `unavailable` if the socket is not open or closes first). */
  request(op, fields = {}, { timeoutMs = this.requestTimeoutMs } = {}) {
    if (this.state !== "open" && op !== "hello") {
      return Promise.reject(new ExamHubError("unavailable", "not connected"));
    }
    return this._send(op, fields, timeoutMs);
  }

  _send(op, fields, timeoutMs) {
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new ExamHubError("timeout", `${op}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, timer, op });
      try {
        this._ws.send(JSON.stringify({ ...fields, op, id }));
      } catch (e) {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(new ExamHubError("unavailable", String(e && e.message)));
      }
    });
  }

  /** Subscribes to `ch` and remembers it: after a reconnect it is resubscribed with `since {epoch, seq}`. */
  async subscribe(ch) {
    const data = await this.request("subscribe", { ch });
    this._track(ch, data);
    return data;
  }

  async unsubscribe(ch) {
    this.channels.delete(ch);
    return this.request("unsubscribe", { ch });
  }

  /** Sends a new token (`refresh` op) before the current one expires. */
  async refresh(token) {
    this.token = typeof this.token === "function" ? this.token : token;
    return this.request("refresh", { token });
  }

  /** Measures the server-time offset again (`ping` op, midpoint of the round trip). */
  async ping() {
    const sent = Date.now();
    const data = await this.request("ping", {}, { timeoutMs: Math.min(this.requestTimeoutMs, 10000) });
    this._measureOffset(data.serverTime, sent, Date.now());
    return data;
  }

  // --- internals

  _track(ch, data) {
    const known = this.channels.get(ch);
    const seq = known && known.epoch === data.epoch ? Math.max(known.seq, data.seq) : data.seq;
    this.channels.set(ch, { epoch: data.epoch, seq });
  }

  _measureOffset(serverTime, sent, received) {
    const t = Date.parse(serverTime);
    if (!Number.isNaN(t)) this.serverTimeOffsetMs = Math.round(t - (sent + received) / 2);
  }

  _setState(state, detail = {}) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, ...detail } }));
  }

  async _connectNow() {
    clearTimeout(this._retryTimer);
    if (this._closedByUser || this._leaving) return;
    this._setState("connecting");
    let token;
    try {
      token = typeof this.token === "function" ? await this.token() : this.token;
    } catch (e) {
      return this._scheduleRetry(new ExamHubError("unauthorized", "no token: " + (e && e.message)));
    }
    let ws;
    try {
      ws = new this.WebSocket(this.url, [SUBPROTOCOL]);
    } catch (e) {
      return this._scheduleRetry(new ExamHubError("unavailable", String(e && e.message)));
    }
    this._ws = ws;
    ws.onopen = async () => {
      const sent = Date.now();
      try {
        const hello = await this._send("hello", { token }, this.requestTimeoutMs);
        if (this._ws !== ws) return;
        this._measureOffset(hello.serverTime, sent, Date.now());
        this.session = hello;
        const reconnected = this._everOpened;
        this._everOpened = true;
        this.attempt = 0;
        this._setState("open");
        this._startHeartbeat(hello.heartbeatSec);
        const resyncs = await this._resubscribe();
        for (const w of this._connectWaiters.splice(0)) w.resolve(hello);
        this.dispatchEvent(new CustomEvent("open", { detail: { ...hello, reconnected } }));
        for (const r of resyncs) this.dispatchEvent(new CustomEvent("resync", { detail: r }));
      } catch (e) {
        if (this._ws === ws) {
          this._authError = e;
          ws.close(1000, "hello failed");
        }
      }
    };
    ws.onmessage = (msg) => this._receive(msg.data);
    ws.onerror = () => {};
    ws.onclose = (ev) => this._closed(ws, ev);
  }

  async _resubscribe() {
    const resyncs = [];
    await Promise.all(
      Array.from(this.channels.entries()).map(async ([ch, pos]) => {
        const fields = pos.epoch != null ? { ch, since: { epoch: pos.epoch, seq: pos.seq } } : { ch };
        try {
          const data = await this.request("subscribe", fields);
          if (!data.recovered) {
            this.channels.set(ch, { epoch: data.epoch, seq: data.seq });
            resyncs.push({ ch, epoch: data.epoch, seq: data.seq });
          } else {
            this.channels.set(ch, { epoch: data.epoch, seq: Math.max(pos.seq, this.channels.get(ch).seq) });
          }
        } catch (e) {
          resyncs.push({ ch, error: e });
        }
      })
    );
    return resyncs;
  }

  _startHeartbeat(sec) {
    clearInterval(this._pingTimer);
    if (!this.heartbeat) return;
    const every = Math.max(1, Number(sec) || 25) * 1000;
    this._pingTimer = setInterval(() => {
      this.ping().catch((e) => {
        if (e.code === "timeout") this._drop(4000, "ping timeout");
      });
    }, every);
  }

  _receive(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (frame.op === "reply") {
      const p = this._pending.get(frame.id);
      if (!p) return;
      this._pending.delete(frame.id);
      clearTimeout(p.timer);
      if (frame.ok) p.resolve(frame.data || {});
      else {
        const err = frame.error || {};
        p.reject(new ExamHubError(err.code || "internal", err.message, err.details));
      }
    } else if (frame.op === "event") {
      const known = this.channels.get(frame.ch);
      if (known) {
        if (typeof frame.seq === "number" && frame.seq <= known.seq) return; // replayed twice: drop
        known.seq = frame.seq;
      } else if (frame.ch && frame.ch !== "conn") {
        // Subscribed implicitly (attempt.join, proctor.watch, chat.send): epoch learnt on the next subscribe.
        this.channels.set(frame.ch, { epoch: null, seq: frame.seq });
      }
      this.dispatchEvent(new CustomEvent("event", { detail: frame }));
      if (frame.type) this.dispatchEvent(new CustomEvent(frame.type, { detail: frame }));
    }
  }

  /** Gives up on the current socket now (a close handshake over a dead network could take minutes). */
  _drop(code, reason) {
    const ws = this._ws;
    if (!ws) return;
    try {
      ws.close(code === 1006 ? 1000 : code, reason);
    } catch {
      // already closing
    }
    this._closed(ws, { code, reason });
  }

  _closed(ws, ev) {
    if (this._ws !== ws) return;
    this._ws = null;
    clearInterval(this._pingTimer);
    for (const [, p] of this._pending) {
      clearTimeout(p.timer);
      p.reject(new ExamHubError("unavailable", `connection closed (${ev.code})`));
    }
    this._pending.clear();
    const authError = this._authError;
    this._authError = null;
    // 4001/4003: the token is refused; only a token function can fetch a better one. 4009: replaced by a newer tab.
    const fatal =
      ev.code === 4009 ||
      ((ev.code === 4001 || ev.code === 4003 || (authError && authError.code === "unauthorized")) &&
        typeof this.token !== "function");
    const willRetry = this.reconnect && !this._closedByUser && !fatal;
    const delayMs = willRetry ? this._retryDelay() : null;
    this.dispatchEvent(
      new CustomEvent("close", { detail: { code: ev.code, reason: ev.reason, willRetry, delayMs, error: authError } })
    );
    if (!willRetry) {
      if (!this._closedByUser) this._setState("closed", { code: ev.code });
      const err = authError || new ExamHubError("unavailable", `connection closed (${ev.code})`);
      for (const w of this._connectWaiters.splice(0)) w.reject(err);
      return;
    }
    this._scheduleRetry(null, delayMs);
  }

  _retryDelay() {
    return backoffDelay(this.attempt, this.backoff);
  }

  _scheduleRetry(error, delayMs = this._retryDelay()) {
    this.attempt += 1;
    this._setState("offline", { delayMs, error });
    clearTimeout(this._retryTimer);
    if (globalThis.navigator && navigator.onLine === false) return; // the `online` event reconnects
    this._retryTimer = setTimeout(() => this._connectNow(), delayMs);
  }
}

// ------------------------------------------------------------------------------------------------- storage

/** The queue's storage: `localStorage` when there is one (synchronous, so what is typed right before the page
 *  closes is on disk before `pagehide` returns, which IndexedDB cannot promise), else memory. */
export function defaultStorage() {
  try {
    const s = globalThis.localStorage;
    s.setItem("examhub.probe", "1");
    s.removeItem("examhub.probe");
    return s;
  } catch {
    return memoryStorage();
  }
}

export function memoryStorage() {
  const m = new Map();
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => m.set(k, String(v)),
    removeItem: (k) => m.delete(k),
  };
}

// ------------------------------------------------------------------------------------------------- autosave

/** A candidate's attempt: `join()`, then `answer(qid, value)` as they type. Each answer is persisted at once
 *  (storage key `examhub.queue.<tenant>.<user>.<examId>`), sent after `debounceMs` of quiet on that question
 *  with a fresh `opId`, and retried with the same `opId` (the hub makes that idempotent) on every reconnect, on
 *  `online`, on `pagehide` and after a reload, until the hub acknowledges it. Only the newest value of a question
 *  is queued. Events: `status` {qid, status: saved|pending|offline|paused|error, version?, error?}, `state`
 *  {state, deadline}, `warned` {message}, `paused`, `resumed`, `extended`, `terminated`, `submitted`, and
 *  `answer` {qid, value, version} when another tab saved. `attempt.join` is called again when the hub could not
 *  replay what this socket missed. */
export class ExamSession extends EventTarget {
  constructor(client, options = {}) {
    super();
    this.client = client;
    this.examId = options.examId;
    this.debounceMs = options.debounceMs ?? 800;
    this.storage = options.storage || defaultStorage();
    this.attemptId = null;
    this.state = null;
    this.deadline = null; // ms since 1970, server time
    this.questions = [];
    this.answers = {}; // qid -> {value, version}
    this.statuses = {}; // qid -> status
    this._queue = {}; // qid -> {value, opId}
    this._inFlight = new Map(); // qid -> opId
    this._timers = new Map();
    this._opCounter = 0;
    this._onOpen = (e) => {
      if (e.detail.reconnected && this.attemptId) this.flush();
    };
    this._onResync = (e) => {
      if (this.attemptId && e.detail.ch === `attempt:${this.attemptId}`) this.join().catch(() => {});
    };
    this._onState = () => this._refreshStatuses();
    this._onEvent = (e) => this._event(e.detail);
    this._onPageHide = () => this.flush();
    client.addEventListener("open", this._onOpen);
    client.addEventListener("resync", this._onResync);
    client.addEventListener("state", this._onState);
    client.addEventListener("event", this._onEvent);
    if (globalThis.addEventListener) {
      globalThis.addEventListener("pagehide", this._onPageHide);
      globalThis.addEventListener("beforeunload", this._onPageHide);
    }
  }

  get storageKey() {
    const u = (this.client.session && this.client.session.user) || {};
    return `examhub.queue.${u.tenant || "-"}.${u.id || "-"}.${this.examId}`;
  }

  /** Joins (or rejoins) the attempt; resolves with `{attemptId, state, deadline, questions, answers}` where
   *  `answers` already has the values still queued on this device, which are sent at once. */
  async join() {
    const data = await this.client.request("attempt.join", { examId: this.examId });
    this.attemptId = data.attemptId;
    this.state = data.state;
    this.deadline = Date.parse(data.deadline);
    this.questions = data.questions || [];
    this.answers = {};
    for (const [qid, a] of Object.entries(data.answers || {})) {
      this.answers[qid] = { value: a.value, version: a.version };
      this.statuses[qid] = "saved";
    }
    this._load();
    for (const [qid, q] of Object.entries(this._queue)) {
      this.answers[qid] = { ...(this.answers[qid] || {}), value: q.value };
    }
    // Learn the channel's epoch so a reconnect can recover with `since`.
    this.client.subscribe(`attempt:${this.attemptId}`).catch(() => {});
    this._refreshStatuses();
    this.flush();
    return { attemptId: this.attemptId, state: this.state, deadline: this.deadline, questions: this.questions,
      answers: this.answers };
  }

  /** Milliseconds left by the server's clock (0 when the deadline passed). */
  remainingMs() {
    if (this.deadline == null) return null;
    return Math.max(0, this.deadline - this.client.serverNow());
  }

  /** Records a new value for `qid`: persisted now, sent after `debounceMs` without another change. */
  answer(qid, value) {
    this.answers[qid] = { ...(this.answers[qid] || {}), value };
    this._queue[qid] = { value, opId: this._newOpId(qid) };
    this._persist();
    this._setStatus(qid, this.client.isOpen ? "pending" : "offline");
    clearTimeout(this._timers.get(qid));
    this._timers.set(qid, setTimeout(() => {
      this._timers.delete(qid);
      this._sendOne(qid);
    }, this.debounceMs));
  }

  /** Number of answers not yet acknowledged by the hub. */
  get pendingCount() {
    return Object.keys(this._queue).length;
  }

  /** Sends every queued answer now (no debounce). Resolves when each has been tried once. */
  flush() {
    const qids = Object.keys(this._queue);
    for (const qid of qids) {
      clearTimeout(this._timers.get(qid));
      this._timers.delete(qid);
    }
    return Promise.all(qids.map((qid) => this._sendOne(qid)));
  }

  /** Submits the attempt after flushing the queue. */
  async submit() {
    await this.flush();
    const data = await this.client.request("attempt.submit", {
      attemptId: this.attemptId, opId: this._newOpId("submit"),
    });
    this.state = data.state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state: this.state, deadline: this.deadline } }));
    return data;
  }

  dispose() {
    this.client.removeEventListener("open", this._onOpen);
    this.client.removeEventListener("resync", this._onResync);
    this.client.removeEventListener("state", this._onState);
    this.client.removeEventListener("event", this._onEvent);
    if (globalThis.removeEventListener) {
      globalThis.removeEventListener("pagehide", this._onPageHide);
      globalThis.removeEventListener("beforeunload", this._onPageHide);
    }
    for (const t of this._timers.values()) clearTimeout(t);
  }

  // --- internals

  _newOpId(qid) {
    this._opCounter += 1;
    return `${randomId("op-")}-${qid}-${this._opCounter}`;
  }

  _load() {
    try {
      const raw = this.storage.getItem(this.storageKey);
      const saved = raw ? JSON.parse(raw) : {};
      // Values typed on this device and never acknowledged win over the hub's (they are newer).
      this._queue = { ...saved, ...this._queue };
    } catch {
      this._queue = { ...this._queue };
    }
  }

  _persist() {
    try {
      if (Object.keys(this._queue).length === 0) this.storage.removeItem(this.storageKey);
      else this.storage.setItem(this.storageKey, JSON.stringify(this._queue));
    } catch {
      // Storage full or denied: the queue still lives in memory.
    }
  }

  async _sendOne(qid) {
    const entry = this._queue[qid];
    if (!entry || !this.attemptId) return;
    if (this._inFlight.get(qid) === entry.opId) return;
    if (!this.client.isOpen) return this._setStatus(qid, "offline");
    if (this.state === "paused") return this._setStatus(qid, "paused");
    this._inFlight.set(qid, entry.opId);
    this._setStatus(qid, "pending");
    try {
      const data = await this.client.request("answer.save", {
        attemptId: this.attemptId, qid, value: entry.value, opId: entry.opId,
      });
      const current = this._queue[qid];
      this.answers[qid] = { value: entry.value, version: data.version };
      if (current && current.opId === entry.opId) {
        delete this._queue[qid];
        this._persist();
        this._setStatus(qid, "saved", { version: data.version });
      } else if (current) {
        this.answers[qid].value = current.value; // a newer value waits for its debounce
      }
    } catch (e) {
      if (e.code === "attempt_paused") this._setStatus(qid, "paused");
      else if (e.code === "unavailable" || e.code === "timeout" || e.code === "rate_limited") {
        this._setStatus(qid, "offline");
      } else {
        // Refused for good (closed attempt, invalid value): keep the value on screen, stop retrying it.
        if (this._queue[qid] && this._queue[qid].opId === entry.opId) {
          delete this._queue[qid];
          this._persist();
        }
        this._setStatus(qid, "error", { error: e });
      }
    } finally {
      if (this._inFlight.get(qid) === entry.opId) this._inFlight.delete(qid);
    }
  }

  _refreshStatuses() {
    for (const qid of Object.keys(this._queue)) {
      if (this._inFlight.has(qid)) continue;
      this._setStatus(qid, !this.client.isOpen ? "offline" : this.state === "paused" ? "paused" : "pending");
    }
  }

  _setStatus(qid, status, extra = {}) {
    this.statuses[qid] = status;
    this.dispatchEvent(new CustomEvent("status", { detail: { qid, status, ...extra } }));
  }

  _event(frame) {
    if (!this.attemptId || frame.ch !== `attempt:${this.attemptId}`) return;
    const d = frame.data || {};
    const emit = (name, detail = d) => this.dispatchEvent(new CustomEvent(name, { detail }));
    const setState = (state, deadline) => {
      this.state = state;
      if (deadline) this.deadline = Date.parse(deadline);
      emit("state", { state: this.state, deadline: this.deadline });
    };
    switch (frame.type) {
      case "answer.saved":
        if (!this._queue[d.qid] && (!this.answers[d.qid] || (this.answers[d.qid].version || 0) < d.version)) {
          this.answers[d.qid] = { value: d.value, version: d.version };
          emit("answer", d);
        }
        break;
      case "attempt.warned":
        emit("warned");
        break;
      case "attempt.paused":
        setState("paused");
        emit("paused");
        break;
      case "attempt.resumed":
        setState("in_progress", d.deadline);
        emit("resumed");
        this.flush();
        break;
      case "attempt.extended":
        setState(this.state, d.deadline);
        emit("extended");
        break;
      case "attempt.terminated":
        setState("terminated");
        emit("terminated");
        break;
      case "attempt.submitted":
        setState("submitted");
        emit("submitted");
        break;
    }
  }
}

// ------------------------------------------------------------------------------------------------- telemetry

/** The PROTOCOL.md 4a kinds, for `record()`. */
export const TELEMETRY_KINDS = [
  "focus.lost", "focus.gained", "visibility.hidden", "visibility.visible", "fullscreen.exit", "fullscreen.enter",
  "clipboard.copy", "clipboard.paste", "devtools.open", "face.count", "gaze.away", "voice.detected",
  "network.offline", "screen.count",
];

/** Proctoring telemetry of one attempt: collectors for what a browser can observe (visibility, focus,
 *  fullscreen, copy/paste, online/offline as `network.offline {seconds}`, screen count through
 *  `screen.isExtended` where the browser has it), hooks for what an app computes (`faceCount(n)`,
 *  `gazeAway(seconds)`, `voice(seconds)`, `devtoolsOpen()`), batched: at most `maxBatch` (256) events per
 *  `telemetry` frame, sent every `intervalMs` (2 s). Events wait in memory while offline (at most `maxBuffer`,
 *  oldest dropped first). */
export class Telemetry {
  constructor(session, options = {}) {
    this.session = session;
    this.client = session.client;
    this.intervalMs = options.intervalMs ?? 2000;
    this.maxBatch = Math.min(256, options.maxBatch ?? 256);
    this.maxBuffer = options.maxBuffer ?? 5000;
    this.buffer = [];
    this.sent = 0;
    this._listeners = [];
    this._timer = null;
    this._offlineSince = null;
    this._sending = false;
  }

  /** Records one event (`kind` from TELEMETRY_KINDS) at the current time. */
  record(kind, data = {}) {
    if (!TELEMETRY_KINDS.includes(kind)) throw new ExamHubError("bad_request", `unknown telemetry kind ${kind}`);
    this.buffer.push({ kind, at: new Date().toISOString(), data });
    if (this.buffer.length > this.maxBuffer) this.buffer.splice(0, this.buffer.length - this.maxBuffer);
    if (this.buffer.length >= this.maxBatch) this.flush();
  }

  faceCount(n) { this.record("face.count", { n }); }
  gazeAway(seconds) { this.record("gaze.away", { seconds }); }
  voice(seconds) { this.record("voice.detected", { seconds }); }
  devtoolsOpen() { this.record("devtools.open"); }

  /** Starts the collectors on `win` (default: the page) and the batch timer. */
  start(win = globalThis) {
    const doc = win.document;
    const on = (target, type, fn) => {
      if (!target || !target.addEventListener) return;
      target.addEventListener(type, fn);
      this._listeners.push(() => target.removeEventListener(type, fn));
    };
    on(doc, "visibilitychange", () => {
      const hidden = doc.visibilityState === "hidden";
      this.record(hidden ? "visibility.hidden" : "visibility.visible");
      if (hidden) this.flush(); // the tab may be closed next, and hidden tabs' timers are throttled
    });
    on(win, "blur", () => this.record("focus.lost"));
    on(win, "focus", () => this.record("focus.gained"));
    on(doc, "fullscreenchange", () => this.record(doc.fullscreenElement ? "fullscreen.enter" : "fullscreen.exit"));
    on(doc, "copy", () => this.record("clipboard.copy"));
    on(doc, "paste", () => this.record("clipboard.paste"));
    on(win, "offline", () => { this._offlineSince = Date.now(); });
    on(win, "online", () => {
      if (this._offlineSince != null) {
        const seconds = Math.round((Date.now() - this._offlineSince) / 100) / 10;
        this._offlineSince = null;
        this.record("network.offline", { seconds });
      }
    });
    const scr = win.screen;
    if (scr && "isExtended" in scr) {
      const report = () => this.record("screen.count", { n: scr.isExtended ? 2 : 1 });
      report();
      on(scr, "change", report);
    }
    this._timer = setInterval(() => this.flush(), this.intervalMs);
    return this;
  }

  stop() {
    for (const off of this._listeners.splice(0)) off();
    clearInterval(this._timer);
  }

  /** Sends what is buffered, `maxBatch` events per frame; keeps it when the socket is down. */
  async flush() {
    if (this._sending || !this.client.isOpen || !this.session.attemptId) return;
    this._sending = true;
    try {
      while (this.buffer.length > 0 && this.client.isOpen) {
        const batch = this.buffer.slice(0, this.maxBatch);
        try {
          await this.client.request("telemetry", { attemptId: this.session.attemptId, events: batch });
        } catch (e) {
          if (e.code === "bad_request" || e.code === "attempt_closed") this.buffer.splice(0, batch.length);
          break;
        }
        this.buffer.splice(0, batch.length);
        this.sent += batch.length;
      }
    } finally {
      this._sending = false;
    }
  }
}

// ------------------------------------------------------------------------------------------------- chat

/** The assistant: `send(text)` returns `{conversationId, messageId, done}` where `done` resolves with the whole
 *  answer `{messageId, text, source, intent?, usage?, cancelled?}` (or rejects with the `chat.error` code). An
 *  intent or policy answer is one `chat.reply`; an LLM answer is `chat.delta`s, then `chat.reply` (source `llm`, the
 *  whole text), then `chat.done` (with `cancelled: true` after `cancel()`, the text being what came). `delta` events
 *  carry `{messageId, text, soFar}`; also `reply`, `done` and `error` events. The first `send` opens a
 *  conversation; later ones continue it. */
export class Chat extends EventTarget {
  constructor(client, options = {}) {
    super();
    this.client = client;
    this.conversationId = options.conversationId || null;
    this.attemptId = options.attemptId || null;
    this._answers = new Map(); // messageId -> {text, resolve, reject, frames[]}
    this._counter = 0;
    this._onEvent = (e) => this._event(e.detail);
    client.addEventListener("event", this._onEvent);
  }

  async send(text, { attemptId = this.attemptId } = {}) {
    this._counter += 1;
    const fields = { text, clientMsgId: randomId("m-") + "-" + this._counter };
    if (this.conversationId) fields.conversationId = this.conversationId;
    if (attemptId) fields.attemptId = attemptId;
    const data = await this.client.request("chat.send", fields);
    this.conversationId = data.conversationId;
    const answer = this._answer(data.messageId);
    return { conversationId: data.conversationId, messageId: data.messageId, done: answer.promise };
  }

  async cancel() {
    if (!this.conversationId) return {};
    return this.client.request("chat.cancel", { conversationId: this.conversationId });
  }

  _answer(messageId) {
    let a = this._answers.get(messageId);
    if (!a) {
      a = { text: "", finished: false };
      a.promise = new Promise((resolve, reject) => { a.resolve = resolve; a.reject = reject; });
      a.promise.catch(() => {});
      this._answers.set(messageId, a);
    }
    return a;
  }

  _event(frame) {
    if (!frame.ch || !frame.ch.startsWith("chat:")) return;
    if (this.conversationId && frame.ch !== `chat:${this.conversationId}`) return;
    const d = frame.data || {};
    // Events may come before the `chat.send` reply names the message: they wait in `_answers`.
    const a = this._answer(d.messageId);
    if (a.finished) return;
    const emit = (name, detail) => this.dispatchEvent(new CustomEvent(name, { detail }));
    switch (frame.type) {
      case "chat.delta":
        a.text += d.text || "";
        emit("delta", { messageId: d.messageId, text: d.text, soFar: a.text });
        break;
      case "chat.reply":
        a.text = d.text || "";
        a.reply = d;
        emit("reply", d);
        if (d.source !== "llm") {
          a.finished = true;
          a.resolve({ ...d, text: a.text });
        }
        break;
      case "chat.done":
        a.finished = true;
        emit("done", { ...d, text: a.text });
        a.resolve({ ...(a.reply || {}), ...d, text: a.text, source: (a.reply && a.reply.source) || "llm",
          cancelled: Boolean(d.cancelled) });
        break;
      case "chat.error":
        a.finished = true;
        emit("error", d);
        a.reject(new ExamHubError(d.code || "internal", d.message, { messageId: d.messageId, text: a.text }));
        break;
    }
  }
}

// ------------------------------------------------------------------------------------------------- proctor

/** A proctor's view of one exam: `watch()` resolves with the roster; `roster` (a Map by attemptId) stays current
 *  with `candidate.*`, `flag.raised` and `risk.changed`; `action(attemptId, action, {message, minutes, reason})`.
 *  Events: `roster` (the whole Map, after any change), `flag` (a `flag.raised` data), and every proctor event by
 *  its type. A reconnect that could not be recovered calls `proctor.watch` again. */
export class ProctorSession extends EventTarget {
  constructor(client, options = {}) {
    super();
    this.client = client;
    this.examId = options.examId;
    this.roster = new Map();
    this.flags = [];
    this._onEvent = (e) => this._event(e.detail);
    this._onResync = (e) => {
      if (e.detail.ch === this.channel) this.watch().catch(() => {});
    };
    client.addEventListener("event", this._onEvent);
    client.addEventListener("resync", this._onResync);
  }

  get channel() {
    return `exam:${this.examId}:proctor`;
  }

  async watch() {
    const data = await this.client.request("proctor.watch", { examId: this.examId });
    this.roster = new Map(data.roster.map((r) => [r.attemptId, { ...r }]));
    this.client.subscribe(this.channel).catch(() => {});
    this._changed();
    return data.roster;
  }

  action(attemptId, action, { message, minutes, reason } = {}) {
    const fields = { attemptId, action };
    if (message) fields.message = message;
    if (minutes != null) fields.minutes = minutes;
    if (reason) fields.reason = reason;
    return this.client.request("proctor.action", fields);
  }

  _changed() {
    this.dispatchEvent(new CustomEvent("roster", { detail: this.roster }));
  }

  _event(frame) {
    if (frame.ch !== this.channel) return;
    const d = frame.data || {};
    const row = this.roster.get(d.attemptId) || { attemptId: d.attemptId, flags: [], risk: 0 };
    switch (frame.type) {
      case "candidate.joined":
        Object.assign(row, d, { connected: true });
        break;
      case "candidate.left":
        Object.assign(row, { connected: false, lastSeen: d.lastSeen });
        break;
      case "candidate.state":
        Object.assign(row, { state: d.state, deadline: d.deadline });
        break;
      case "flag.raised":
        row.flags = [...(row.flags || []), { code: d.code, severity: d.severity, at: d.at }];
        this.flags.unshift(d);
        this.dispatchEvent(new CustomEvent("flag", { detail: d }));
        break;
      case "risk.changed":
        row.risk = d.risk;
        break;
      default:
        return;
    }
    if (!row.candidate && d.candidate) row.candidate = d.candidate;
    this.roster.set(d.attemptId, row);
    this.dispatchEvent(new CustomEvent(frame.type, { detail: d }));
    this._changed();
  }
}
