// Decision boundaries: the model's output on a grid over the data, computed by the service.

import { post } from "./api.js";

export const GRID_SIZE = 100;

function linspace(lo, hi, n) {
  const step = (hi - lo) / (n - 1);
  return Array.from({ length: n }, (_, i) => lo + i * step);
}

// A grid of n × n points over bounds {x: [lo, hi], y: [lo, hi]}. The service builds the points
// (predict with {"grid": ...}), x₀ varying fastest: point k is (xs[k mod n], ys[k div n]). Sending
// the 10,000 points as X instead takes about 40% longer (benchmarks/boundary.py).
export function makeGrid(bounds, n = GRID_SIZE) {
  const xs = linspace(bounds.x[0], bounds.x[1], n);
  const ys = linspace(bounds.y[0], bounds.y[1], n);
  const grid = { start: [xs[0], ys[0]], stop: [xs[n - 1], ys[n - 1]], num: [n, n] };
  return { xs, ys, n, bounds, body: JSON.stringify({ grid }) };
}

// {xs, ys, z (rows = y, columns = x), kind, classes} from a Prediction on the grid's points.
export function toBoundary(grid, prediction, task) {
  const { n } = grid;
  const z = [];
  const { probabilities, predictions } = prediction;
  for (let j = 0; j < n; j++) {
    const row = new Array(n);
    for (let i = 0; i < n; i++) {
      const k = j * n + i;
      if (task === "binary") row[i] = probabilities[k];
      else if (task === "multiclass") {
        const p = probabilities[k];
        let best = 0;
        for (let c = 1; c < p.length; c++) if (p[c] > p[best]) best = c;
        row[i] = best;
      } else row[i] = predictions[k];
    }
    z.push(row);
  }
  return { xs: grid.xs, ys: grid.ys, z, kind: task, classes: prediction.classes || [], epoch: prediction.epoch };
}

// The boundary of a stored model.
export async function modelBoundary(modelId, grid, task, signal) {
  const prediction = await post(`/v1/models/${encodeURIComponent(modelId)}/predict`, grid.body, { signal });
  return toBoundary(grid, prediction, task);
}

// The boundary of a running job's latest weights (its snapshot), with the epoch they are from.
export async function snapshotBoundary(jobId, grid, task, signal) {
  const prediction = await post(`/v1/jobs/${encodeURIComponent(jobId)}/snapshot/predict`, grid.body, { signal });
  return toBoundary(grid, prediction, task);
}
