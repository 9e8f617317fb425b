// Recent events: the agent's server-sent event stream (/v1/events), newest first,
// the last MAX_EVENTS kept.

import { $, API, clock, el, view } from "./common.js";

const MAX_EVENTS = 100;
// EventSource delivers a named event only to a listener for that name.
const KINDS = [
  "member-joined", "member-updated", "member-suspect", "member-failed", "member-left",
  "member-recovered", "member-reaped", "leader-changed", "election-info", "fence",
  "partitioned", "panic", "recovered", "fact", "facts_dropped", "lowest_version",
  "setting", "action", "action_result", "delivery_requested", "delivery_receipt",
  "delivery_stage_complete", "delivery_complete", "delivery_failed", "clock-leap",
  "effect-failed", "trace",
];

// A node id (hex) as the member's name when this agent knows it.
function who(id) {
  const m = view.members.find((x) => x.id === id);
  return m ? m.name : String(id || "?").slice(0, 8);
}

function short(id) {
  return String(id || "?").slice(0, 8);
}

function eventText(e) {
  const m = e.member;
  if (m) return `${m.name} ${m.state} ${m.address}`;
  switch (e.event) {
    case "leader-changed": return `leader ${e.leader || "none"} (term ${e.term})`;
    case "election-info": return `${e.from} says leader ${e.leader || "none"}, term ${e.term} (${e.role})`;
    case "fence": return `fence ${e.node} ${e.address} (term ${e.term})`;
    case "partitioned": return `${e.node} partitioned: silent, but its disk slot is written`;
    case "panic": return `panic: ${e.reason}`;
    case "recovered": return `left panic mode (${e.recover_gen})`;
    case "trace": return `${e.op} ${e.node}: ${e.detail}`;
    case "fact": return `${e.node}: ${e.key} = ${e.value ?? "(deleted)"}`;
    case "facts_dropped": return `${e.node}: facts dropped`;
    case "setting": return `${e.name} = ${e.value ?? "(deleted)"} (by ${who(e.writer)})`;
    case "lowest_version": return `lowest version ${e.old ?? "–"} → ${e.new ?? "–"}`;
    case "action": return `${e.name} from ${who(e.origin)}`;
    case "action_result": return `${e.node}: ${e.ok ? "ok" : "failed"} ${e.result}`;
    case "delivery_requested": return `${short(e.id)} stage ${e.stage + 1} from ${who(e.owner)}`;
    case "delivery_receipt": return `${short(e.id)} stage ${e.stage + 1}: receipt from ${who(e.node)}`;
    case "delivery_stage_complete": return `${short(e.id)} stage ${e.stage + 1} complete`;
    case "delivery_complete": return `${short(e.id)} complete`;
    case "delivery_failed": return `${short(e.id)} ${e.state}: ${e.reason || ""}`;
    case "clock-leap": return `clock leapt ${Number(e.delta).toFixed(1)} s`;
    case "effect-failed": return `${e.effect}: ${e.error}`;
    default: {
      const rest = { ...e };
      delete rest.event;
      delete rest.time;
      const text = JSON.stringify(rest);
      return text.length > 160 ? `${text.slice(0, 157)}…` : text;
    }
  }
}

function onEvent(message) {
  let e;
  try { e = JSON.parse(message.data); } catch (_) { return; }
  const kind = String(e.event || message.type);
  if (kind === "trace" && !$("show-traces").checked) return;
  const list = $("events");
  const time = typeof e.time === "number" ? clock(e.time) : "";
  list.prepend(el("li", { "data-kind": kind },
    el("span", { class: "time" }, time), el("span", { class: "kind" }, kind), el("span", { class: "text" }, eventText(e))));
  while (list.childElementCount > MAX_EVENTS) list.lastElementChild.remove();
}

export function watchEvents() {
  const stream = $("stream");
  const source = new EventSource(new URL("events", API));
  for (const kind of KINDS) source.addEventListener(kind, onEvent);
  source.onmessage = onEvent;
  source.onopen = () => { stream.setAttribute("data-stream", "live"); stream.textContent = "stream live"; };
  source.onerror = () => {
    stream.setAttribute("data-stream", "down");
    stream.textContent = "stream lost";
    // EventSource retries a lost connection itself, but gives up on an HTTP error
    // (503: too many streams): then open a new one a little later.
    if (source.readyState === EventSource.CLOSED) setTimeout(watchEvents, 5000);
  };
}
