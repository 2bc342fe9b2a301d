// Unit tests of examhub.js, run inside Chromium by Tests/Browser/test_examhub_unit.py against a real hub.
// This file is the body of an async function: `config` holds {moduleURL, socketURL, examId, candidate, proctor,
// admin} (tokens); it returns [{name, ok, error}]. Fakes replace the socket only where a real hub cannot show
// the behaviour (a reply that never comes, a skewed server clock).
const m = await import(config.moduleURL);
const results = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
function eq(a, b, what) {
  const x = JSON.stringify(a), y = JSON.stringify(b);
  if (x !== y) throw new Error(`${what}: expected ${y}, got ${x}`);
}
function ok(v, what) { if (!v) throw new Error(what); }
async function test(name, fn) {
  try {
    await fn();
    results.push({ name, ok: true });
  } catch (e) {
    results.push({ name, ok: false, error: String((e && e.stack) || e) });
  }
}
const client = (token, extra = {}) =>
  new m.ExamHubClient({ url: config.socketURL, token, backoff: { baseMs: 50, maxMs: 200 }, ...extra });

/** A WebSocket double: opens, and answers `hello` with `helloData` (or never, when null). */
function fakeSocket(helloData, log = []) {
  return class FakeWS {
    constructor(url, protocols) {
      log.push({ url, protocols });
      this.readyState = 0;
      setTimeout(() => { this.readyState = 1; this.onopen && this.onopen(); }, 0);
    }
    send(raw) {
      const f = JSON.parse(raw);
      log.push(f);
      if (f.op === "hello" && helloData) {
        setTimeout(() => this.onmessage({ data: JSON.stringify({ op: "reply", id: f.id, ok: true, data: helloData }) }), 0);
      }
    }
    close(code) { this.readyState = 3; setTimeout(() => this.onclose && this.onclose({ code: code || 1000 }), 0); }
  };
}

await test("backoff_schedule", async () => {
  const lo = [0, 1, 2, 3, 4, 5, 6, 7].map((n) => m.backoffDelay(n, { baseMs: 500, maxMs: 8000, random: () => 0 }));
  const hi = [0, 1, 2, 3, 4, 5, 6, 7].map((n) => m.backoffDelay(n, { baseMs: 500, maxMs: 8000, random: () => 0.999999 }));
  eq(lo, [250, 500, 1000, 2000, 4000, 4000, 4000, 4000], "lowest delays (half the ceiling)");
  eq(hi, [500, 1000, 2000, 4000, 8000, 8000, 8000, 8000], "highest delays (the ceiling, capped)");
  const spread = new Set(Array.from({ length: 50 }, () => m.backoffDelay(3, { baseMs: 500 })));
  ok(spread.size > 10, `jitter spreads reconnects (${spread.size} distinct delays of 50)`);
});

await test("subprotocol_and_hello", async () => {
  const c = client(config.candidate);
  const hello = await c.connect();
  eq(hello.user.role, "candidate", "role from hello");
  ok(c.session.connId, "connId");
  c.close();
  const log = [];
  const f = new m.ExamHubClient({ url: "ws://fake/", token: "T", WebSocket: fakeSocket({ serverTime: new Date().toISOString() }, log) });
  await f.connect();
  eq(log[0].protocols, ["examhub.v1.json"], "offers the v1 subprotocol");
  eq([log[1].op, log[1].token], ["hello", "T"], "the first frame is hello with the token");
  f.close();
});

await test("request_reply_correlation", async () => {
  const c = client(config.proctor);
  await c.connect();
  // Several requests in flight at once, answered in any order: each promise gets its own reply.
  const [p1, sub, p2, bad] = await Promise.allSettled([
    c.ping(),
    c.request("subscribe", { ch: `exam:${config.examId}:proctor` }),
    c.request("ping"),
    c.request("subscribe", { ch: "exam:bad id:proctor" }),
  ]);
  ok(p1.status === "fulfilled" && p1.value.serverTime, "ping 1 answered");
  ok(sub.status === "fulfilled" && typeof sub.value.epoch === "string" && sub.value.recovered === false,
    "subscribe answered with its own data: " + JSON.stringify(sub.value));
  ok(p2.status === "fulfilled" && p2.value.serverTime, "ping 2 answered");
  ok(bad.status === "rejected" && bad.reason instanceof m.ExamHubError && bad.reason.code === "bad_request",
    "an error reply rejects with its code: " + (bad.reason && bad.reason.code));
  eq(c._pending.size, 0, "nothing left pending");
  c.close();
});

await test("request_timeout", async () => {
  const log = [];
  const f = new m.ExamHubClient({ url: "ws://fake/", token: "T", requestTimeoutMs: 150, heartbeat: false,
    WebSocket: fakeSocket({ serverTime: new Date().toISOString() }, log) });
  await f.connect();
  const t0 = Date.now();
  let err;
  try { await f.request("ping"); } catch (e) { err = e; }
  const took = Date.now() - t0;
  ok(err && err.code === "timeout", "rejects with timeout: " + (err && err.code));
  ok(took >= 140 && took < 1000, `after about 150 ms (${took})`);
  eq(f._pending.size, 0, "forgotten after the timeout");
  f.close();
});

await test("server_time_offset", async () => {
  const ahead = 90_000;
  const f = new m.ExamHubClient({ url: "ws://fake/", token: "T", heartbeat: false,
    WebSocket: fakeSocket({ serverTime: new Date(Date.now() + ahead).toISOString(), heartbeatSec: 25 }) });
  await f.connect();
  ok(Math.abs(f.serverTimeOffsetMs - ahead) < 200, `offset ${f.serverTimeOffsetMs} ~ ${ahead}`);
  ok(Math.abs(f.serverNow() - (Date.now() + ahead)) < 200, "serverNow applies it");
  f.close();
  const real = client(config.candidate);
  await real.connect();
  ok(Math.abs(real.serverTimeOffsetMs) < 2000, `same machine: offset ${real.serverTimeOffsetMs} is small`);
  real.close();
});

await test("reconnect_recovers_with_since", async () => {
  const ch = `exam:${config.examId}:proctor`;
  const c = client(config.proctor, { heartbeat: false });
  const admin = client(config.admin);
  await Promise.all([c.connect(), admin.connect()]);
  const got = [];
  c.addEventListener("event", (e) => { if (e.detail.ch === ch && e.detail.type === "demo.note") got.push(e.detail.data.n); });
  const resyncs = [];
  c.addEventListener("resync", (e) => resyncs.push(e.detail));
  const opens = [];
  c.addEventListener("open", (e) => opens.push(e.detail.reconnected));
  await c.subscribe(ch);
  await admin.request("publish", { ch, type: "demo.note", data: { n: 1 } });
  await until("event 1", () => got.length === 1);
  const before = c.channels.get(ch);
  const sent = [];
  const realSend = WebSocket.prototype.send;
  // Drop the socket and publish while it is down (a long backoff keeps it down); the browser's `online` event
  // reconnects at once, and the resubscription with `since` must replay 2 and 3.
  c.backoff = { baseMs: 60_000, maxMs: 60_000 };
  c._ws.close();
  await until("close seen", () => c.state === "offline");
  await admin.request("publish", { ch, type: "demo.note", data: { n: 2 } });
  await admin.request("publish", { ch, type: "demo.note", data: { n: 3 } });
  eq(got, [1], "nothing while down");
  WebSocket.prototype.send = function (raw) { sent.push(JSON.parse(raw)); return realSend.call(this, raw); };
  window.dispatchEvent(new Event("online"));
  try {
    await until("reconnected", () => opens.length === 1, 5000);
    await until("events 2 and 3 replayed", () => got.length === 3);
  } finally {
    WebSocket.prototype.send = realSend;
  }
  eq(got, [1, 2, 3], "every event once, in order");
  const resub = sent.find((f) => f.op === "subscribe" && f.ch === ch);
  eq(resub && resub.since, { epoch: before.epoch, seq: before.seq }, "resubscribed with since {epoch, seq}");
  eq(resyncs, [], "no resync when the hub recovered");
  eq(opens, [true], "the open event says reconnected");
  c.close();
  admin.close();
});

await test("unrecoverable_gap_resyncs_and_rejoins", async () => {
  const c = client(config.candidate, { heartbeat: false });
  await c.connect();
  const session = new m.ExamSession(c, { examId: config.examId, storage: m.memoryStorage() });
  await session.join();
  const ch = `attempt:${session.attemptId}`;
  await until("epoch learnt", () => c.channels.get(ch) && c.channels.get(ch).epoch);
  const joins = [];
  const realRequest = c.request.bind(c);
  c.request = (op, fields, o) => { if (op === "attempt.join") joins.push(fields.examId); return realRequest(op, fields, o); };
  c.channels.get(ch).epoch = "an-epoch-the-hub-never-had";
  const resyncs = [];
  c.addEventListener("resync", (e) => resyncs.push(e.detail.ch));
  c._ws.close();
  await until("resync", () => resyncs.length === 1);
  eq(resyncs, [ch], "resync for the attempt channel");
  await until("attempt.join again", () => joins.length === 1);
  session.dispose();
  c.close();
});

await test("autosave_debounces_per_question", async () => {
  const c = client(config.candidate);
  await c.connect();
  const session = new m.ExamSession(c, { examId: config.examId, storage: m.memoryStorage(), debounceMs: 150 });
  await session.join();
  const saves = [];
  const realRequest = c.request.bind(c);
  c.request = (op, fields, o) => { if (op === "answer.save") saves.push([fields.qid, fields.value]); return realRequest(op, fields, o); };
  for (const v of ["h", "he", "hel", "hell", "hello"]) { session.answer("q-text", v); await sleep(20); }
  session.answer("q-number", 7);
  await until("both saved", () => session.statuses["q-text"] === "saved" && session.statuses["q-number"] === "saved");
  eq(saves.sort(), [["q-number", 7], ["q-text", "hello"]], "one save per question, the last value");
  eq(session.pendingCount, 0, "queue empty");
  session.dispose();
  c.close();
});

await test("offline_queue_persists_and_flushes", async () => {
  const storage = m.memoryStorage();
  const c = client(config.candidate, { heartbeat: false });
  await c.connect();
  const s1 = new m.ExamSession(c, { examId: config.examId, storage, debounceMs: 50 });
  await s1.join();
  c.close(); // the network is gone: answers wait in storage
  s1.answer("q-text", "typed offline");
  await sleep(120);
  eq(s1.statuses["q-text"], "offline", "status offline");
  const stored = JSON.parse(storage.getItem(s1.storageKey));
  ok(stored["q-text"] && stored["q-text"].value === "typed offline" && stored["q-text"].opId, "persisted with an opId");
  s1.dispose();
  // A new page: a new client and session over the same storage send the queued answer on join.
  const c2 = client(config.candidate);
  await c2.connect();
  const s2 = new m.ExamSession(c2, { examId: config.examId, storage });
  const state = await s2.join();
  eq(state.answers["q-text"].value, "typed offline", "join shows the queued value");
  await until("saved", () => s2.statuses["q-text"] === "saved");
  eq(storage.getItem(s2.storageKey), null, "storage emptied once acknowledged");
  const again = await c2.request("attempt.join", { examId: config.examId });
  eq(again.answers["q-text"].value, "typed offline", "the hub has it");
  // Retrying an acknowledged opId (a reply lost on the way) creates no new version.
  const opId = stored["q-text"].opId;
  const r = await c2.request("answer.save", { attemptId: s2.attemptId, qid: "q-text", value: "typed offline", opId });
  eq(r.version, again.answers["q-text"].version, "same opId, same version");
  s2.dispose();
  c2.close();
});

await test("telemetry_batches_at_most_256", async () => {
  const c = client(config.candidate);
  await c.connect();
  const session = new m.ExamSession(c, { examId: config.examId, storage: m.memoryStorage() });
  await session.join();
  const t = new m.Telemetry(session, { intervalMs: 60_000 });
  const frames = [];
  const realRequest = c.request.bind(c);
  c.request = (op, fields, o) => { if (op === "telemetry") frames.push(fields.events.length); return realRequest(op, fields, o); };
  for (let i = 0; i < 300; i++) t.record(i % 2 ? "focus.gained" : "focus.lost");
  await t.flush();
  await until("all sent", () => t.sent === 300 && t.buffer.length === 0);
  ok(frames.every((n) => n <= 256), `frames of at most 256: ${frames}`);
  eq(frames.reduce((a, b) => a + b, 0), 300, "every event sent once");
  let threw = false;
  try { t.record("not.a.kind"); } catch (e) { threw = e.code === "bad_request"; }
  ok(threw, "unknown kinds refused locally");
  session.dispose();
  c.close();
});

await test("chat_streams_deltas_and_cancels", async () => {
  // A double that speaks the hub's chat frames (the real hub is in test_chat_page.py), for the orderings a
  // real hub rarely shows: a delta before the reply that names the message.
  const frames = [];
  let seq = 0;
  class ChatWS {
    constructor() { setTimeout(() => this.onopen(), 0); }
    push(obj) { setTimeout(() => this.onmessage({ data: JSON.stringify(obj) }), 0); }
    event(type, data) { this.push({ op: "event", ch: "chat:cv-1", seq: ++seq, type, ts: new Date().toISOString(), data }); }
    send(raw) {
      const f = JSON.parse(raw);
      frames.push(f);
      if (f.op === "hello") this.push({ op: "reply", id: f.id, ok: true, data: { serverTime: new Date().toISOString() } });
      if (f.op === "chat.send" && f.text === "rules?") {
        this.event("chat.reply", { messageId: "msg-1", text: "No notes allowed.", intent: "rules", confidence: 0.9, source: "intent" });
        this.push({ op: "reply", id: f.id, ok: true, data: { conversationId: "cv-1", messageId: "msg-1" } });
      }
      if (f.op === "chat.send" && f.text === "tell me more") {
        // A delta may come before the reply that names the message.
        this.event("chat.delta", { messageId: "msg-2", text: "Hel" });
        this.push({ op: "reply", id: f.id, ok: true, data: { conversationId: "cv-1", messageId: "msg-2" } });
        this.event("chat.delta", { messageId: "msg-2", text: "lo " });
        this.event("chat.delta", { messageId: "msg-2", text: "there" });
        this.event("chat.reply", { messageId: "msg-2", text: "Hello there", intent: null, source: "llm" });
        this.event("chat.done", { messageId: "msg-2", usage: { totalTokens: 12 } });
      }
      if (f.op === "chat.send" && f.text === "long answer") {
        this.push({ op: "reply", id: f.id, ok: true, data: { conversationId: "cv-1", messageId: "msg-3" } });
        this.event("chat.delta", { messageId: "msg-3", text: "Once upon" });
      }
      if (f.op === "chat.cancel") {
        this.push({ op: "reply", id: f.id, ok: true, data: {} });
        this.event("chat.done", { messageId: "msg-3", usage: { totalTokens: 3 }, cancelled: true });
      }
    }
    close() {}
  }
  const c = new m.ExamHubClient({ url: "ws://fake/", token: "T", heartbeat: false, WebSocket: ChatWS });
  await c.connect();
  const chat = new m.Chat(c, { attemptId: "a-1" });
  const intent = await chat.send("rules?");
  eq(await intent.done.then((a) => [a.text, a.source]), ["No notes allowed.", "intent"], "intent answer");
  eq(frames.find((f) => f.op === "chat.send").attemptId, "a-1", "attemptId sent");
  const deltas = [];
  chat.addEventListener("delta", (e) => deltas.push(e.detail.soFar));
  const streamed = await chat.send("tell me more");
  const answer = await streamed.done;
  eq([answer.text, answer.source, answer.usage.totalTokens], ["Hello there", "llm", 12], "streamed answer");
  eq(deltas, ["Hel", "Hello ", "Hello there"], "delta events carry the text so far");
  eq(frames.filter((f) => f.op === "chat.send").map((f) => f.conversationId), [undefined, "cv-1"], "continues the conversation");
  const long = await chat.send("long answer");
  await chat.cancel();
  const cut = await long.done;
  eq([cut.cancelled, cut.text], [true, "Once upon"], "cancel ends the answer with what came");
  eq(frames.find((f) => f.op === "chat.cancel").conversationId, "cv-1", "chat.cancel names the conversation");
  c.close();
});

return results;
