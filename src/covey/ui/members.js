// The members table: one row per member, made once and rewritten only when what it
// shows changed, so a table of hundreds of members costs little per update.

import { $, el, setText, view } from "./common.js";

const STATES = ["alive", "suspect", "failed", "left"];

function memberSig(m, lead, version, you) {
  const tags = Object.entries(m.tags || {}).sort().map(([k, v]) => `${k}=${v}`).join(" ");
  return [m.name, m.state, m.address, m.incarnation, tags, lead, version, you].join("\u0001");
}

function newRow(m) {
  const cells = {
    name: el("td", { class: "name" }),
    state: el("td", { class: "state" }),
    address: el("td", { class: "address" }),
    version: el("td", { class: "version" }),
    tags: el("td", { class: "tags" }),
    inc: el("td", { class: "inc" }),
  };
  const tr = el("tr", { "data-member": m.name, "data-id": m.id }, ...Object.values(cells));
  return { tr, cells, sig: "", text: "" };
}

function fillRow(row, m, lead, version, you) {
  const { cells, tr } = row;
  tr.setAttribute("data-member", m.name);
  tr.setAttribute("data-state", m.state);
  const marks = [];
  if (you) marks.push(el("span", { class: "you", title: "the agent serving this page" }, "this agent"));
  if (lead) marks.push(el("span", { class: "lead", title: "the elected leader" }, "leader"));
  cells.name.replaceChildren(m.name, ...marks);
  cells.state.replaceChildren(el("span", { class: "pill", "data-state": m.state }, m.state));
  cells.address.textContent = m.address;
  cells.version.textContent = version || "–";
  const tags = Object.entries(m.tags || {}).sort();
  cells.tags.replaceChildren(...tags.map(([k, v]) => el("span", { class: "tag" }, `${k}=${v}`)));
  cells.inc.textContent = String(m.incarnation);
  row.text = [m.name, m.state, m.address, version || "", ...tags.map(([k, v]) => `${k}=${v}`)]
    .join(" ").toLowerCase();
}

// Keyed update: a row is created once per member and rewritten only when what it
// shows changed; the table is re-ordered only when the set or order of members did.
export function renderMembers() {
  const started = performance.now();
  const list = view.members;
  const leader = view.names && view.names.leader;
  const versions = (view.versions && view.versions.nodes) || {};
  const self = view.info && view.info.self ? view.info.self.id : null;
  const body = $("member-rows");
  const seen = new Set();
  const counts = { alive: 0, suspect: 0, failed: 0, left: 0 };
  for (const m of list) {
    seen.add(m.id);
    counts[m.state] = (counts[m.state] || 0) + 1;
    let row = view.rows.get(m.id);
    if (!row) {
      row = newRow(m);
      view.rows.set(m.id, row);
    }
    const lead = leader === m.name && m.state === "alive";
    const version = versions[m.name];
    const you = m.id === self;
    const sig = memberSig(m, lead, version, you);
    if (sig !== row.sig) {
      fillRow(row, m, lead, version, you);
      row.sig = sig;
    }
  }
  for (const [id, row] of view.rows) {
    if (!seen.has(id)) {
      row.tr.remove();
      view.rows.delete(id);
    }
  }
  const order = list.map((m) => m.id).join(",");
  if (order !== view.order) {
    const frag = document.createDocumentFragment();
    for (const m of list) frag.append(view.rows.get(m.id).tr);
    body.append(frag);
    view.order = order;
  }
  setText("count-total", list.length);
  for (const s of STATES) setText(`count-${s}`, counts[s] || 0);
  applyFilter();
  const took = performance.now() - started;
  const stats = view.renders;
  stats.count += 1;
  stats.lastMs = took;
  if (stats.count === 1) stats.firstMs = took;
  else {
    stats.laterMs += took;
    stats.maxMs = Math.max(stats.maxMs, took);
  }
}

// A click on a state's count in the summary filters the table by that state.
export function filterByState(event) {
  const pill = event.target.closest("[data-state]");
  if (!pill) return;
  const filter = $("filter");
  filter.value = filter.value === pill.dataset.state ? "" : pill.dataset.state;
  applyFilter();
}

export function applyFilter() {
  const words = $("filter").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  let shown = 0;
  for (const row of view.rows.values()) {
    const hide = words.length > 0 && !words.every((w) => row.text.includes(w));
    if (row.tr.hidden !== hide) row.tr.hidden = hide;
    if (!hide) shown += 1;
  }
  setText("members-shown", words.length ? `${shown} of ${view.rows.size} shown` : "");
}
