// Element helpers and formatting shared by the views: building and filling nodes (text is
// always added as text nodes, so nothing the API answers is parsed as HTML), status badges,
// dates, JSON blocks, and a throttle for renders driven by streams.

/** The page's main area, which each view fills. */
export const main = document.getElementById("main");

/** Sets `attrs` (`on<event>` ones become listeners; null, undefined and false are skipped) and appends `children` (text as text nodes). */
function build(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An HTML element (see `build`). */
export const el = (tag, attrs = {}, ...children) => build(document.createElement(tag), attrs, children);

/** An SVG element (see `build`). */
export const svg = (tag, attrs = {}, ...children) => build(document.createElementNS("http://www.w3.org/2000/svg", tag), attrs, children);

/** Replaces a node's children; arrays are flattened, null/false skipped (like `el`). */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
  return node;
}

export const badge = (status) => el("span", { class: `badge ${status}` }, status);
export const when = (t) => (t ? new Date(t).toLocaleString() : "");
export const pretty = (v) => el("pre", {}, JSON.stringify(v, null, 2));
export const enc = encodeURIComponent;

/** A duration in ms as people read it: `850 ms`, `4.2 s`, `3 m 4 s`, `2 h 5 m`, `1 d 1 h`; "" for none. */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? (Math.floor(s * 10) / 10).toFixed(1) : Math.floor(s)} s`;
  const whole = Math.floor(s);
  if (whole < 3600) return `${Math.floor(whole / 60)} m ${whole % 60} s`;
  if (whole < 86400) return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} m`;
  return `${Math.floor(whole / 86400)} d ${Math.floor((whole % 86400) / 3600)} h`;
}

/** Calls `fn` at most once per `ms`, with the arguments of the call that armed it. */
export function throttle(fn, ms) {
  let timer = null;
  return (...args) => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; fn(...args); }, ms);
  };
}
