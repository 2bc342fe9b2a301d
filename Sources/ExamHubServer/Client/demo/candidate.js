// The candidate demo page: an exam with autosave, a server-time countdown, proctor messages and the assistant.
import { Chat, ExamHubClient, ExamSession, Telemetry } from "/client/examhub.js";
import { devToken, el, ensureDemoExam, examId, params, showConnection } from "/demo/common.js";

const sub = params.get("sub") || "candidate-1";
const STATUS_TEXT = { saved: "Saved", pending: "Saving...", offline: "Offline: kept on this device",
  paused: "Paused: will save on resume", error: "Not saved" };

const hub = new ExamHubClient({ token: devToken("candidate", sub) });
const session = new ExamSession(hub, { examId });
const telemetry = new Telemetry(session);
const chat = new Chat(hub);
window.examhubDemo = { hub, session, telemetry, chat };
showConnection(hub, document.getElementById("conn"));

function setStatus(qid, status) {
  const s = document.getElementById(`status-${qid}`);
  if (!s) return;
  s.dataset.status = status;
  s.textContent = STATUS_TEXT[status] || status;
}
session.addEventListener("status", (e) => setStatus(e.detail.qid, e.detail.status));

function questionView(q, answer) {
  const value = answer ? answer.value : undefined;
  const status = el("span", { id: `status-${q.id}`, class: "status", role: "status",
    "data-status": answer && answer.version ? "saved" : "none" },
    answer && answer.version ? STATUS_TEXT.saved : "Not answered");
  const legend = el("legend", { id: `prompt-${q.id}` }, q.prompt);
  const fs = el("fieldset", { "data-qid": q.id, "aria-describedby": `status-${q.id}` }, legend);
  if (q.type === "single" || q.type === "multi") {
    const type = q.type === "single" ? "radio" : "checkbox";
    q.options.forEach((opt, i) => {
      const id = `q-${q.id}-${i}`;
      const checked = q.type === "single" ? value === opt : Array.isArray(value) && value.includes(opt);
      const input = el("input", { type, id, name: `q-${q.id}`, value: opt, checked });
      input.addEventListener("change", () => {
        const picked = [...fs.querySelectorAll("input:checked")].map((x) => x.value);
        session.answer(q.id, q.type === "single" ? picked[0] : picked);
      });
      fs.append(el("div", {}, input, " ", el("label", { for: id }, opt)));
    });
  } else {
    const id = `q-${q.id}`;
    const input = q.type === "text"
      ? el("textarea", { id, "aria-labelledby": `prompt-${q.id}` })
      : el("input", { id, type: "number", step: "any", "aria-labelledby": `prompt-${q.id}` });
    if (value != null) input.value = value;
    input.addEventListener("input", () => {
      if (q.type === "text") return session.answer(q.id, input.value);
      if (input.value !== "" && Number.isFinite(Number(input.value))) session.answer(q.id, Number(input.value));
    });
    fs.append(input);
  }
  fs.append(el("div", { class: "row" }, status));
  return fs;
}

function render(state) {
  const box = document.getElementById("questions");
  box.replaceChildren(...state.questions.map((q) => questionView(q, state.answers[q.id])));
  for (const [qid, status] of Object.entries(session.statuses)) setStatus(qid, status);
  showState();
}

function showState() {
  const paused = session.state === "paused";
  const closed = ["submitted", "terminated"].includes(session.state);
  document.getElementById("paused").hidden = !paused;
  document.getElementById("all-questions").disabled = paused || closed;
  document.getElementById("submit").disabled = paused || closed;
  document.getElementById("attempt-state").textContent = `Attempt: ${session.state.replace("_", " ")}`;
}

function notice(text) {
  document.getElementById("notices").append(el("li", {}, text));
}

session.addEventListener("state", showState);
session.addEventListener("warned", (e) => notice(`Proctor: ${e.detail.message}`));
session.addEventListener("paused", () => notice("The proctor paused your exam."));
session.addEventListener("resumed", () => notice("The proctor resumed your exam."));
session.addEventListener("extended", () => notice("The proctor gave you more time."));
session.addEventListener("terminated", (e) => notice(`The proctor ended your exam. ${e.detail.message || ""}`));
session.addEventListener("submitted", () => notice("Your exam is submitted."));
session.addEventListener("answer", () => render({ questions: session.questions, answers: session.answers }));

// The countdown runs on the server's clock (hello/ping measure the offset) and stops while paused.
let frozenMs = null;
setInterval(() => {
  const left = session.remainingMs();
  if (left == null) return;
  if (session.state === "paused") frozenMs = frozenMs ?? left;
  else frozenMs = null;
  const ms = frozenMs ?? left;
  const s = Math.ceil(ms / 1000);
  const text = `${Math.floor(s / 3600) ? Math.floor(s / 3600) + ":" : ""}${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  document.getElementById("countdown").textContent = session.state === "paused" ? `${text} (paused)` : text;
}, 250);

document.getElementById("submit").addEventListener("click", async () => {
  try {
    await session.submit();
  } catch (e) {
    notice(`Could not submit: ${e.message}`);
  }
});

// The assistant panel: streamed answers appear as they arrive.
const log = document.getElementById("chat-log");
const cancel = document.getElementById("chat-cancel");
const bubbles = new Map();
function bubble(messageId) {
  let b = bubbles.get(messageId);
  if (!b) {
    b = el("li", { "data-message": messageId, class: "bot" });
    bubbles.set(messageId, b);
    log.append(b);
  }
  return b;
}
chat.addEventListener("delta", (e) => { bubble(e.detail.messageId).textContent = e.detail.soFar; });
chat.addEventListener("reply", (e) => { bubble(e.detail.messageId).textContent = e.detail.text; });
chat.addEventListener("error", (e) => {
  bubble(e.detail.messageId).textContent += " [the assistant could not answer]";
});
document.getElementById("chat-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = document.getElementById("chat-input");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  log.append(el("li", { class: "me" }, text));
  try {
    const sent = await chat.send(text, { attemptId: session.attemptId });
    const b = bubble(sent.messageId);
    b.dataset.state = "streaming";
    cancel.disabled = false;
    try {
      const answer = await sent.done;
      b.textContent = answer.cancelled ? `${answer.text} [stopped]` : answer.text;
      b.dataset.state = answer.cancelled ? "cancelled" : "done";
    } catch {
      b.dataset.state = "error";
    } finally {
      cancel.disabled = true;
    }
  } catch (e) {
    log.append(el("li", { class: "bot", "data-state": "error" }, `The assistant is unavailable (${e.message}).`));
  }
});
cancel.addEventListener("click", () => chat.cancel().catch(() => {}));

async function start() {
  await ensureDemoExam();
  await hub.connect();
  const state = await session.join();
  document.getElementById("title").textContent = `Exam ${examId}`;
  render(state);
  telemetry.start();
  // After an unrecoverable gap the session joins again: show what the hub has.
  hub.addEventListener("resync", () => setTimeout(() => render({ questions: session.questions, answers: session.answers }), 0));
  document.body.dataset.ready = "1";
}
start().catch((e) => {
  notice(`Could not start: ${e.message}`);
  document.body.dataset.ready = "error";
});
