// The proctor demo page: a live roster with actions and a flag feed.
import { ExamHubClient, ProctorSession } from "/client/examhub.js";
import { devToken, el, ensureDemoExam, examId, params, showConnection } from "/demo/common.js";

const sub = params.get("sub") || "proctor-1";
const hub = new ExamHubClient({ token: devToken("proctor", sub) });
const proctor = new ProctorSession(hub, { examId });
window.examhubDemo = { hub, proctor };
showConnection(hub, document.getElementById("conn"));
document.getElementById("exam-id").textContent = examId;

const ACTIONS = [["warn", "Warn"], ["pause", "Pause"], ["resume", "Resume"], ["extend", "Extend"], ["terminate", "Terminate"]];
const result = document.getElementById("action-result");

async function act(row, action) {
  const options = {
    message: document.getElementById("message").value || undefined,
    reason: document.getElementById("reason").value || undefined,
    minutes: action === "extend" ? Number(document.getElementById("minutes").value) : undefined,
  };
  try {
    const r = await proctor.action(row.attemptId, action, options);
    result.textContent = `${action} ${row.candidate}: now ${r.state}`;
  } catch (e) {
    result.textContent = `${action} ${row.candidate} failed: ${e.code} ${e.message}`;
  }
}

function render() {
  const body = document.getElementById("roster");
  const rows = [...proctor.roster.values()];
  if (rows.length === 0) return;
  body.replaceChildren(...rows.map((row) => {
    const flags = el("td", { class: "flags" }, ...(row.flags || []).map((f) =>
      el("span", { class: `flag ${f.severity}`, title: f.at }, f.code)));
    const buttons = el("td", { class: "row" }, ...ACTIONS.map(([action, label]) =>
      el("button", { type: "button", "data-action": action, "aria-label": `${label} ${row.candidate}`,
        onclick: () => act(row, action) }, label)));
    return el("tr", { "data-attempt": row.attemptId, "data-candidate": row.candidate },
      el("th", { scope: "row" }, row.candidate || row.attemptId),
      el("td", { class: "state" }, (row.state || "").replace("_", " ")),
      el("td", { class: "risk" }, String(row.risk ?? 0)),
      flags,
      el("td", { class: "connected" }, row.connected ? "yes" : "no"),
      buttons);
  }));
}

proctor.addEventListener("roster", render);
proctor.addEventListener("flag", (e) => {
  const f = e.detail;
  const who = (proctor.roster.get(f.attemptId) || {}).candidate || f.attemptId;
  document.getElementById("feed").prepend(el("li", { "data-code": f.code, "data-attempt": f.attemptId },
    el("span", { class: `flag ${f.severity}` }, f.code), ` ${who} `,
    el("span", { class: "muted" }, new Date(f.at).toLocaleTimeString())));
});

async function start() {
  await ensureDemoExam();
  await hub.connect();
  await proctor.watch();
  document.body.dataset.ready = "1";
}
start().catch((e) => {
  result.textContent = `Could not start: ${e.message}`;
  document.body.dataset.ready = "error";
});
