// Small DOM helpers shared by the views: element building, the alert area, number formatting.

import { ApiError } from "./api.js";

// h("button", {class: "x", onclick: f}, "text", child) → element
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

// Shows an error in the page's alert area: a problem's status, title and detail as the service sent it.
export function showError(err, context = "") {
  if (err?.name === "AbortError") return;
  console.warn(context || "lab", err);
  const box = $("#alerts");
  const what = err instanceof ApiError ? `${err.status ? err.status + " " : ""}${err.title}` : "Error";
  const item = h(
    "div",
    { class: "alert", role: "alert" },
    h("strong", {}, context ? `${context}: ` : "", what ? `${what} — ` : ""),
    h("span", { class: "detail" }, err?.message || String(err)),
    h("button", { type: "button", class: "close", "aria-label": "Dismiss this message", onclick: () => item.remove() }, "×"),
  );
  box.prepend(item);
  while (box.children.length > 4) box.lastChild.remove();
}

export function clearErrors() {
  $("#alerts").replaceChildren();
}

export function fmt(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (typeof value !== "number") return String(value);
  if (value !== 0 && (Math.abs(value) < 1e-3 || Math.abs(value) >= 1e5)) return value.toExponential(2);
  return value.toFixed(digits).replace(/\.?0+$/, (m) => (m.startsWith(".") ? "" : m));
}

export function pct(value) {
  return value === null || value === undefined ? "—" : `${(100 * value).toFixed(1)}%`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 90) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  return m < 90 ? `${m} min ${Math.round(seconds % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function shortId(id) {
  return id ? id.replace(/^(\w+_)(.{6}).*(.{4})$/, "$1$2…$3") : "—";
}

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

// A labelled form control: <div class="field"><label for=id>text</label> control hint</div>
export function field(label, control, hint) {
  if (!control.id) control.id = `f-${Math.random().toString(36).slice(2, 9)}`;
  return h(
    "div",
    { class: "field" },
    h("label", { for: control.id }, label),
    control,
    hint ? h("small", { class: "hint", id: `${control.id}-hint` }, hint) : null,
  );
}

export function select(id, options, value) {
  const el = h("select", { id, name: id });
  for (const option of options) {
    const [v, text] = Array.isArray(option) ? option : [option, option];
    el.append(h("option", { value: v, selected: String(v) === String(value) }, text));
  }
  return el;
}

export function describeArchitecture(architecture, nFeatures) {
  if (!architecture) return "—";
  const layers = architecture.layers || [];
  const sizes = [nFeatures ?? architecture.n_features, ...layers.map((l) => l.units)].join("→");
  const acts = [...new Set(layers.map((l) => l.activation))].join("/");
  return `${architecture.type} ${sizes} (${acts})`;
}
