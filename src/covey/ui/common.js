// Helpers every part of the dashboard uses: the API's address, requests, DOM building,
// time formatting, and the one object holding what the page last read.
//
// Every name, tag and address shown was written by some peer: it only ever reaches the
// page as text (textContent, text nodes), never as HTML.

export const API = new URL("../v1/", location.href);

export const $ = (id) => document.getElementById(id);

// What the page last read from the agent.
export const view = {
  members: [], // the last /v1/members answer
  names: null, // /v1/names, or null while the election is off or unknown
  electionOff: "",
  versions: null,
  info: null,
  interfaces: undefined, // undefined: not asked yet; null: this agent has no such route
  interfacesAskedAt: 0,
  rows: new Map(), // member id -> {tr, cells, sig, text}
  order: "",
  // The members table's updates, in ms of JavaScript (see covey.view in the console):
  // the first (every row made) apart from the others (their sum and the largest).
  renders: { count: 0, firstMs: 0, lastMs: 0, laterMs: 0, maxMs: 0 },
};

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

export function setText(id, text) {
  const node = $(id);
  const value = text === null || text === undefined ? "–" : String(text);
  if (node.textContent !== value) node.textContent = value;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function request(path, timeout = 10000) {
  const control = new AbortController();
  const timer = setTimeout(() => control.abort(), timeout);
  try {
    const response = await fetch(new URL(path, API), { cache: "no-store", signal: control.signal });
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    return { status: response.status, ok: response.ok, body, index: Number(response.headers.get("X-Covey-Index")) || 0 };
  } finally {
    clearTimeout(timer);
  }
}

export function clock(seconds) {
  const d = new Date(seconds * 1000);
  return d.toLocaleTimeString([], { hour12: false });
}

export function age(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  // Wall-clock timestamps (seconds since the epoch) become "N s ago".
  const ago = seconds > 1e9 ? Date.now() / 1000 - seconds : seconds;
  if (ago < 1) return "now";
  if (ago < 90) return `${Math.round(ago)} s ago`;
  if (ago < 5400) return `${Math.round(ago / 60)} min ago`;
  return `${Math.round(ago / 3600)} h ago`;
}

export function duration(seconds) {
  if (typeof seconds !== "number") return "–";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}
