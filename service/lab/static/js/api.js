// The lab's only way to the service: the public HTTP API, with the API key when one is set.
//
// Every error answer is RFC 9457 problem+json; it becomes an ApiError whose message is the
// problem's `detail`, so the page can show exactly what the service said.

const KEY_STORAGE = "descent.apiKey";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.title = problem.title || "";
    this.problem = problem;
  }
}

export function apiKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  const key = apiKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function problemOf(response) {
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      return await response.json();
    } catch {
      /* fall through */
    }
  }
  const text = await response.text().catch(() => "");
  return { status: response.status, title: response.statusText, detail: text.slice(0, 300) || response.statusText };
}

// request("GET", "/v1/jobs") → parsed JSON (null for 204). Throws ApiError on any non-2xx answer.
export async function request(method, path, { body, headers: extra, signal, raw } = {}) {
  const init = { method, headers: headers(extra), signal };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, { title: "Network error", detail: `the service did not answer ${method} ${path}` });
  }
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path, opts) => request("GET", path, opts);
export const post = (path, body, opts = {}) => request("POST", path, { ...opts, body });
export const del = (path, opts) => request("DELETE", path, opts);

// Follows GET /v1/jobs/{id}/events. EventSource cannot send an Authorization header, so the stream
// is read with fetch; a dropped connection is resumed with Last-Event-ID, so no event is lost or
// repeated. Calls onEvent({id, event, data}) for each event and resolves after the `end` event.
export async function followEvents(jobId, onEvent, { signal } = {}) {
  let lastId = "";
  let retries = 0;
  for (;;) {
    let ended = false;
    try {
      const extra = { Accept: "text/event-stream" };
      if (lastId) extra["Last-Event-ID"] = lastId;
      const response = await request("GET", `/v1/jobs/${encodeURIComponent(jobId)}/events`, {
        headers: extra,
        signal,
        raw: true,
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const message = parseMessage(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (!message) continue;
          lastId = message.id || lastId;
          retries = 0;
          onEvent(message);
          if (message.event === "end") ended = true;
        }
      }
      if (ended) return;
      // The stream closed without an end event: the job had ended before (a resumed stream), or the
      // connection dropped. Resume; the service closes at once when nothing is left.
      if (lastId === "") return;
    } catch (err) {
      if (err.name === "AbortError" || (err instanceof ApiError && err.status !== 0 && err.status < 500)) throw err;
    }
    if (ended) return;
    retries += 1;
    if (retries > 8) throw new ApiError(0, { title: "Stream lost", detail: `the event stream of job ${jobId} kept failing` });
    await sleep(Math.min(4000, 250 * 2 ** retries), signal);
  }
}

function parseMessage(text) {
  const message = { id: "", event: "message", data: "" };
  let any = false;
  for (const line of text.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") message.data += (message.data ? "\n" : "") + value;
    else if (field === "id") message.id = value;
    else if (field === "event") message.event = value;
    any = true;
  }
  if (!any) return null;
  try {
    message.data = message.data ? JSON.parse(message.data) : {};
  } catch {
    /* keep the text */
  }
  return message;
}

export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new DOMException("aborted", "AbortError"));
    });
  });
}

// Downloads an authenticated GET as a file (an <a download> on a blob URL).
export async function download(path, filename) {
  const response = await request("GET", path, { raw: true, headers: { Accept: "*/*" } });
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
