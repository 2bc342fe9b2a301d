// Shared by the demo pages: dev tokens from GET /demo/token and the demo exam.
export const params = new URLSearchParams(location.search);
export const tenant = params.get("tenant") || "demo";
export const examId = params.get("exam") || "demo";

/** A function that fetches a fresh dev token (called on every (re)connect by ExamHubClient). */
export function devToken(role, sub) {
  return async () => {
    const q = new URLSearchParams({ role, sub, tenant });
    const res = await fetch(`/demo/token?${q}`, { cache: "no-store" });
    if (!res.ok) throw new Error(`GET /demo/token: ${res.status}`);
    return (await res.json()).token;
  };
}

export const DEMO_EXAM = {
  id: "demo",
  title: "ExamHub demo exam",
  durationSec: 3600,
  graceSec: 30,
  questions: [
    { id: "q1", type: "single", prompt: "Which HTTP status means Created?", options: ["200", "201", "204", "409"] },
    { id: "q2", type: "multi", prompt: "Which of these are idempotent HTTP methods?", options: ["GET", "PUT", "POST", "DELETE"] },
    { id: "q3", type: "text", prompt: "Explain idempotency in one sentence." },
    { id: "q4", type: "number", prompt: "How many bits are in a byte?" },
  ],
  proctoring: { profile: "default" },
};

/** Creates the exam `demo` once (a 409 means it exists already). Other exam ids must exist. */
export async function ensureDemoExam() {
  if (examId !== "demo") return;
  const admin = await devToken("admin", "demo-admin")();
  const res = await fetch("/v1/exams", {
    method: "POST", headers: { Authorization: `Bearer ${admin}`, "Content-Type": "application/json" },
    body: JSON.stringify(DEMO_EXAM),
  });
  if (res.status !== 201 && res.status !== 409) throw new Error(`POST /v1/exams: ${res.status}`);
}

/** Shows the socket's state in the `#conn` pill. */
export function showConnection(hub, el) {
  const show = () => { el.dataset.state = hub.state; el.textContent = hub.state === "open" ? "online" : hub.state; };
  hub.addEventListener("state", show);
  show();
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}
