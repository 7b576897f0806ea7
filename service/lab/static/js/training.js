// Follows one training job: its event stream drives the curves, the progress line and the boundary.
//
// Each `progress` event asks for the epochs recorded since the last one (GET /metrics?since_epoch=)
// and, while the job runs, for the boundary of its latest weights. At most one request of each kind
// is in flight: a slow page skips to the newest state and never queues work behind the stream.

import { followEvents, get, post } from "./api.js";
import { modelBoundary, snapshotBoundary } from "./boundary.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const MAX_POINTS = 2000; // per series; beyond it the history is fetched again, downsampled
const KEYS = ["train_loss", "val_loss", "train_accuracy", "val_accuracy"];

export const stats = { redraws: [], events: 0 };
window.descentLab = Object.assign(window.descentLab || {}, { stats });

function emptyHistory() {
  return { epochs: [], train_loss: [], val_loss: [], train_accuracy: [], val_accuracy: [] };
}

export class JobFollower {
  // handlers: onProgress(data), onStatus(job-ish), onHistory(history), onBoundary(boundary), onEnd(job)
  constructor(jobId, { grid, task, handlers, live = true }) {
    this.jobId = jobId;
    this.grid = grid;
    this.task = task;
    this.handlers = handlers;
    this.live = live && Boolean(grid);
    this.history = emptyHistory();
    this.controller = new AbortController();
    this.want = { metrics: false, boundary: false };
    this.busy = { metrics: false, boundary: false };
    this.receivedAt = 0;
    this.ended = false;
    this.lastSnapshotEpoch = -1;
  }

  get signal() {
    return this.controller.signal;
  }

  async start() {
    await this.refreshHistory();
    await followEvents(this.jobId, (event) => this.onEvent(event), { signal: this.signal });
  }

  stop() {
    this.controller.abort();
  }

  cancel() {
    return post(`/v1/jobs/${encodeURIComponent(this.jobId)}/cancel`, {});
  }

  onEvent({ event, data }) {
    stats.events += 1;
    if (event === "progress") {
      this.receivedAt = performance.now();
      this.handlers.onProgress?.(data);
      this.want.metrics = true;
      if (this.live) this.want.boundary = true;
      this.pump();
    } else if (event === "status") {
      this.handlers.onStatus?.(data);
      if (data.attempt > 1 && data.status === "running") this.refreshHistory(); // a resumed run rewrites epochs
    } else if (event === "end") {
      this.finish(data);
    }
  }

  pump() {
    if (this.want.metrics && !this.busy.metrics) this.fetchMetrics();
    if (this.want.boundary && !this.busy.boundary && !this.ended) this.fetchSnapshotBoundary();
  }

  async refreshHistory() {
    const history = await get(`/v1/jobs/${encodeURIComponent(this.jobId)}/metrics?max_points=1000`, {
      signal: this.signal,
    });
    this.history = { ...emptyHistory(), ...history };
    for (const key of KEYS) this.history[key] = this.history[key] || [];
    this.handlers.onHistory?.(this.history);
  }

  async fetchMetrics() {
    this.want.metrics = false;
    this.busy.metrics = true;
    try {
      const last = this.history.epochs.at(-1) ?? 0;
      const part = await get(`/v1/jobs/${encodeURIComponent(this.jobId)}/metrics?since_epoch=${last}`, {
        signal: this.signal,
      });
      if (this.history.epochs.length + part.epochs.length > MAX_POINTS) {
        await this.refreshHistory();
      } else if (part.epochs.length) {
        this.history.epochs.push(...part.epochs);
        for (const key of KEYS) {
          const values = part[key] || part.epochs.map(() => null);
          this.history[key].push(...values);
        }
        this.handlers.onHistory?.(this.history);
      }
    } catch (err) {
      if (err.name !== "AbortError") this.handlers.onError?.(err);
    } finally {
      this.busy.metrics = false;
      if (this.want.metrics) this.pump();
    }
  }

  async fetchSnapshotBoundary() {
    this.want.boundary = false;
    this.busy.boundary = true;
    const asked = this.receivedAt;
    try {
      const boundary = await snapshotBoundary(this.jobId, this.grid, this.task, this.signal);
      if (boundary && boundary.epoch !== this.lastSnapshotEpoch && !this.ended) {
        this.lastSnapshotEpoch = boundary.epoch;
        await this.paint(boundary, asked, performance.now());
      }
    } catch (err) {
      // No snapshot yet (409: the first progress write comes before the first snapshot): wait for the next.
      if (err.name !== "AbortError" && err.status !== 409) this.handlers.onError?.(err);
    } finally {
      this.busy.boundary = false;
      if (this.want.boundary) this.pump();
    }
  }

  // Draws a boundary and records how long it took: from the event (since) and from its answer (fetched).
  async paint(boundary, since, fetched) {
    await this.handlers.onBoundary?.(boundary);
    // Measured to the next frame: the boundary is on screen then.
    await new Promise((resolve) => requestAnimationFrame(() => resolve()));
    const now = performance.now();
    stats.redraws.push({ ms: now - since, fetchMs: fetched - since, drawMs: now - fetched, epoch: boundary.epoch, at: now });
    if (stats.redraws.length > 500) stats.redraws.shift();
  }

  async finish(data) {
    this.ended = true;
    this.want.boundary = false;
    const job = await get(`/v1/jobs/${encodeURIComponent(this.jobId)}`, { signal: this.signal });
    await this.refreshHistory();
    if (job.model_id && this.grid) {
      const started = performance.now();
      try {
        const boundary = await modelBoundary(job.model_id, this.grid, this.task, this.signal);
        await this.paint(boundary, started, performance.now());
      } catch (err) {
        if (err.name !== "AbortError") this.handlers.onError?.(err);
      }
    }
    this.handlers.onEnd?.(job, data);
  }
}

export function isTerminal(status) {
  return TERMINAL.has(status);
}
