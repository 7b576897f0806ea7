// The lab's state lives in the URL hash: #/<view>?<settings>. A copied link opens the same view with
// the same settings (seeds included), so a run can be shared and reproduced.

export function currentRoute() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [view, query = ""] = hash.split("?");
  return { view: view || "", params: new URLSearchParams(query) };
}

// Writes the view's settings into the URL without adding a history entry or firing hashchange.
export function writeParams(view, values) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined || value === null || value === "") continue;
    params.set(key, String(value));
  }
  const hash = `#/${view}${params.toString() ? "?" + params.toString() : ""}`;
  if (location.hash !== hash) history.replaceState(history.state, "", hash);
  return location.href;
}

// Values of `params` for the keys of `defaults`, converted to each default's type.
export function readParams(params, defaults) {
  const values = { ...defaults };
  for (const [key, fallback] of Object.entries(defaults)) {
    if (!params.has(key)) continue;
    const raw = params.get(key);
    if (typeof fallback === "number") {
      const number = Number(raw);
      if (raw.trim() !== "" && Number.isFinite(number)) values[key] = number;
    } else if (typeof fallback === "boolean") {
      values[key] = raw === "1" || raw === "true";
    } else {
      values[key] = raw;
    }
  }
  return values;
}
