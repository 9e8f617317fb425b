// The smaller panels: leader and election, versions, health and traffic, drops and
// interfaces, deliveries in flight. Each load* reads one route and renders its panel.

import { $, age, duration, el, request, setText, view } from "./common.js";
import { renderMembers } from "./members.js";

const MAX_DELIVERIES = 50;
// Drop reasons that mean a peer is misconfigured (shown in red).
const BAD_DROPS = new Set(["bad_key", "foreign_cluster", "plaintext_refused", "encrypted_unexpected"]);

export async function loadNames() {
  const answer = await request("names");
  if (answer.status === 404) {
    view.names = null;
    view.electionOff = (answer.body && answer.body.error) || "the election is off";
  } else if (answer.ok) {
    view.names = answer.body;
    view.electionOff = "";
  }
  const n = view.names;
  const card = $("election");
  card.setAttribute("data-enabled", n ? "true" : "false");
  const leader = $("leader");
  leader.setAttribute("data-leader", n && n.leader ? n.leader : "");
  setText("leader", n ? n.leader || "none" : "off");
  setText("term", n ? n.term : null);
  const mode = $("mode");
  mode.setAttribute("data-mode", n ? n.mode : "");
  setText("mode", n ? n.mode : null);
  const stable = $("stable");
  stable.setAttribute("data-stable", n ? String(Boolean(n.stable)) : "");
  setText("stable", n ? (n.stable ? "stable" : "not stable") : "");
  let note = view.electionOff;
  if (n && n.mode === "panic") note = `panic: ${n.panic_reason || "?"}`;
  else if (n && n.partitioned && n.partitioned.length) note = `partitioned: ${n.partitioned.join(", ")}`;
  else if (n && n.quorum) note = `quorum ${n.quorum} of ${n.expected_votes}`;
  setText("election-note", note);
}

export async function loadVersions() {
  const answer = await request("versions");
  if (!answer.ok) return;
  view.versions = answer.body;
  const v = answer.body;
  setText("version-lowest", v.lowest || "–");
  setText("version-local", v.local || "–");
  const spread = {};
  for (const value of Object.values(v.nodes || {})) {
    const key = value || "unset";
    spread[key] = (spread[key] || 0) + 1;
  }
  const parts = Object.entries(spread).sort().map(([k, c]) => `${c}× ${k}`);
  setText("version-spread", parts.join(" · "));
}

// ------------------------------------------------------------------ info, drops, interfaces

export async function loadInfo() {
  const answer = await request("info");
  if (!answer.ok || !answer.body) return;
  const info = answer.body;
  const firstSelf = !view.info;
  view.info = info;
  setText("cluster", info.cluster);
  setText("agent", info.self ? info.self.name : "?");
  document.title = `covey · ${info.cluster} · ${info.self ? info.self.name : ""}`;
  const health = info.health || {};
  const badge = $("health");
  badge.setAttribute("data-status", health.status || "unknown");
  badge.textContent = `health ${health.status || "?"}`;
  badge.title = (health.reasons || []).join("\n");
  setText("health-reasons", (health.reasons || []).join(" · ") || "");
  const stats = info.stats || {};
  setText("dgram-in", stats.datagrams_received);
  setText("dgram-out", stats.datagrams_sent);
  setText("streams-opened", stats.streams_opened);
  setText("streams-served", stats.streams_served);
  setText("uptime", duration(info.uptime));
  const disc = info.discovery || {};
  setText("discovery", disc.enabled ? `${disc.mode} ${disc.group || ""}` : "discovery off");
  renderDrops(info.drops || {});
  if (firstSelf) renderMembers(); // now "this agent" can be marked
}

function renderDrops(drops) {
  const list = $("drops");
  const entries = Object.entries(drops).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  if (!entries.length) {
    if (!list.querySelector(".empty")) list.replaceChildren(el("li", { class: "muted empty" }, "none"));
    return;
  }
  const items = entries.map(([reason, count]) =>
    el("li", { "data-reason": reason, "data-count": String(count), class: BAD_DROPS.has(reason) ? "bad" : "" },
      el("span", { class: "reason" }, reason), el("span", { class: "count" }, String(count))));
  list.replaceChildren(...items);
}

export async function loadInterfaces() {
  // An agent without /v1/interfaces (404) is asked again only now and then.
  const now = Date.now();
  if (view.interfaces === null && now - view.interfacesAskedAt < 30000) return;
  view.interfacesAskedAt = now;
  const answer = await request("interfaces");
  if (answer.status === 404) view.interfaces = null;
  else if (answer.ok && answer.body) view.interfaces = answer.body;
  renderInterfaces();
}

function dropsText(drops) {
  const parts = Object.entries(drops || {}).filter(([, n]) => n > 0).map(([r, n]) => `${r} ${n}`);
  return parts.length ? parts.join(", ") : "–";
}

function renderInterfaces() {
  const box = $("interfaces");
  const data = view.interfaces;
  if (!data) {
    const disc = (view.info && view.info.discovery) || {};
    const names = (disc.interfaces || []).join(", ") || "none";
    box.replaceChildren(el("p", { class: "muted" },
      `beacons on ${names}; per-interface figures need GET /v1/interfaces, which this agent does not serve`));
    return;
  }
  const head = el("tr", {}, ...["interface", "mode", "beacons in / out", "last in", "peers", "drops"].map((h) => el("th", {}, h)));
  const rows = (data.interfaces || []).map((i) => {
    const peers = i.peers || [];
    return el("tr", { "data-interface": i.name },
      el("td", {}, el("b", {}, i.name), " ", el("span", { class: "mono muted" }, i.address)),
      el("td", {}, i.mode),
      el("td", {}, `${i.beacons_in ?? "–"} / ${i.beacons_out ?? "–"}`),
      el("td", {}, age(i.last_in)),
      el("td", { title: peers.map((p) => `${p.name || "?"} ${p.address} (${p.count})`).join("\n") }, String(peers.length)),
      el("td", {}, dropsText(i.drops)));
  });
  const u = data.unicast;
  if (u) {
    rows.push(el("tr", { "data-interface": "unicast" },
      el("td", {}, el("b", {}, "unicast"), " ", el("span", { class: "mono muted" }, u.address || "")),
      el("td", {}, "udp"),
      el("td", {}, `${u.datagrams_in ?? "–"} / ${u.datagrams_out ?? "–"}`),
      el("td", {}, age(u.last_in)),
      el("td", {}, ""),
      el("td", {}, dropsText(u.drops))));
  }
  const status = data.status ? el("p", { class: "muted" }, typeof data.status === "string" ? data.status : JSON.stringify(data.status)) : null;
  box.replaceChildren(el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)), status || "");
}

// ------------------------------------------------------------------ deliveries

export async function loadDeliveries() {
  const answer = await request("deliveries");
  const box = $("deliveries");
  if (!answer.ok || !Array.isArray(answer.body)) {
    box.replaceChildren(el("p", { class: "muted" }, (answer.body && answer.body.error) || "deliveries unavailable"));
    setText("deliveries-summary", "");
    return;
  }
  const all = answer.body;
  const flying = all.filter((d) => d.state === "pending" || d.state === "stage");
  const ended = all.length - flying.length;
  setText("deliveries-summary", `${flying.length} in flight · ${ended} ended`);
  if (!flying.length) {
    box.replaceChildren(el("p", { class: "muted" }, "none in flight"));
    return;
  }
  const now = Date.now() / 1000;
  const head = el("tr", {}, ...["id", "owner", "state", "stage", "receipts", "deadline"].map((h) => el("th", {}, h)));
  const rows = flying.slice(-MAX_DELIVERIES).reverse().map((d) => {
    const stage = (d.stages || [])[d.stage] || { receipts: 0, required: 0 };
    const share = stage.required ? Math.min(1, stage.receipts / stage.required) : 0;
    const bar = el("span", { class: "bar" }, el("span"));
    bar.firstChild.style.width = `${Math.round(share * 100)}%`;
    return el("tr", { "data-delivery": d.id, "data-state": d.state },
      el("td", { class: "mono", title: d.id }, d.id.slice(0, 8)),
      el("td", {}, d.owner),
      el("td", {}, d.state),
      el("td", {}, `${d.stage + 1} / ${(d.stages || []).length}`),
      el("td", { title: stage.selector || "" }, bar, ` ${stage.receipts}/${stage.required}`),
      el("td", {}, d.deadline ? `${Math.max(0, Math.round(d.deadline - now))} s` : "–"));
  });
  const more = flying.length > MAX_DELIVERIES ? el("p", { class: "muted" }, `the newest ${MAX_DELIVERIES} of ${flying.length}`) : "";
  box.replaceChildren(el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)), more);
}
