// covey dashboard: plain JavaScript, no framework, no build step.
//
// Where the data comes from (all of it this agent's JSON API, relative to the page):
// * members: GET /v1/members as a blocking query (?index=N&wait=30s). It answers as soon
//   as anything changes on the agent, and its X-Covey-Index moving is the signal to
//   re-read the leader, the versions and the deliveries too;
// * recent events: GET /v1/events, server-sent events (EventSource reconnects by itself);
// * what changes without an event (drops, traffic, interface health, the leader turning
//   stable): /v1/info, /v1/interfaces, /v1/names and /v1/deliveries, read every POLL_MS.
// The parts: common.js (helpers, what was read), members.js (the table), panels.js (the
// rest), events.js (the event stream); this file runs the loops that feed them.

import { $, request, sleep, view } from "./common.js";
import { watchEvents } from "./events.js";
import { applyFilter, filterByState, renderMembers } from "./members.js";
import { loadDeliveries, loadInfo, loadInterfaces, loadNames, loadVersions } from "./panels.js";

const POLL_MS = 2000;
const WAIT = "30s"; // the blocking query's hold; the fetch gives up a while after it
const FETCH_TIMEOUT_MS = 45000;

async function watchMembers() {
  let index = 0;
  let backoff = 500;
  // Runs for the life of the page; each turn is bounded by the hold and the fetch timeout.
  for (;;) {
    try {
      const path = index ? `members?index=${index}&wait=${WAIT}` : "members";
      const answer = await request(path, FETCH_TIMEOUT_MS);
      if (!answer.ok || !Array.isArray(answer.body)) throw new Error(`members: HTTP ${answer.status}`);
      const moved = answer.index !== index;
      index = answer.index; // lower than before: the agent restarted, and this is fresh
      view.members = answer.body;
      renderMembers();
      setConnection("live");
      backoff = 500;
      if (moved) refreshChanged();
    } catch (err) {
      setConnection("down", String(err && err.message ? err.message : err));
      index = 0;
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 5000);
    }
  }
}

function setConnection(state, why) {
  const node = $("conn");
  node.setAttribute("data-conn", state);
  node.textContent = state === "live" ? "live" : state === "down" ? "agent unreachable" : "connecting";
  node.title = why || "";
}

let refreshing = false;
let refreshAgain = false;

// Re-read what an index change may have changed; coalesced, so a burst of changes
// costs one round of requests at a time.
async function refreshChanged() {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  try {
    do {
      refreshAgain = false;
      await Promise.all([loadNames(), loadVersions(), loadDeliveries()].map(quiet));
      renderMembers();
    } while (refreshAgain);
  } finally {
    refreshing = false;
  }
}

function quiet(promise) {
  return promise.catch(() => undefined); // the members loop reports the connection
}

// Counters, and what changes without an event (the leader turning stable, deadlines).
async function pollCounters() {
  for (;;) {
    await Promise.all([loadInfo(), loadInterfaces(), loadNames(), loadDeliveries()].map(quiet));
    await sleep(POLL_MS);
  }
}

$("filter").addEventListener("input", applyFilter);
$("counts").addEventListener("click", filterByState);
window.covey = { view }; // for a look from the browser's console
watchEvents();
watchMembers();
pollCounters();
refreshChanged();
