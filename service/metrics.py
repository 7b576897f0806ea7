"""Request counts and latency histograms, rendered in the Prometheus text format (version 0.0.4).

Written by hand: two metric families do not justify a dependency. Values live in this process; with
several server processes each answers for itself.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable

# Upper bounds in seconds: from sub-millisecond compute calls up to multi-second uploads.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Series:
    """The requests of one (method, route): a count per status and a latency histogram."""

    __slots__ = ("buckets", "statuses", "total")

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """HTTP request metrics of one process, updated from the event loop thread only."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self.in_progress = 0
        # One entry per (method, route), so that recording a request finds everything in one lookup.
        self._series: dict[tuple[str, str], _Series] = {}
        #: Further gauges, read when rendered: (name, help, read).
        self.gauges: list[tuple[str, str, Callable[[], float]]] = []

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its duration."""
        series = self._series.get((method, route))
        if series is None:
            series = self._series[(method, route)] = _Series()
        statuses = series.statuses
        statuses[status] = statuses.get(status, 0) + 1
        series.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        series.total += seconds

    def render(self) -> str:
        """The metrics in the Prometheus text exposition format."""
        lines = [
            "# HELP descent_http_requests_total HTTP requests answered, by method, route and status.",
            "# TYPE descent_http_requests_total counter",
        ]
        counts = sorted(
            ((method, route, status), count)
            for (method, route), series in self._series.items()
            for status, count in series.statuses.items()
        )
        for (method, route, status), count in counts:
            labels = f'method="{method}",route="{_label(route)}",status="{status}"'
            lines.append(f"descent_http_requests_total{{{labels}}} {count}")
        lines += [
            "# HELP descent_http_request_duration_seconds Time from request start to response end.",
            "# TYPE descent_http_request_duration_seconds histogram",
        ]
        for (method, route), series in sorted(self._series.items()):
            labels = f'method="{method}",route="{_label(route)}"'
            cumulative = 0
            for bound, count in zip(LATENCY_BUCKETS, series.buckets, strict=False):
                cumulative += count
                lines.append(
                    f'descent_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {cumulative}'
                )
            cumulative += series.buckets[-1]
            lines.append(f'descent_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {cumulative}')
            lines.append(f"descent_http_request_duration_seconds_sum{{{labels}}} {series.total!r}")
            lines.append(f"descent_http_request_duration_seconds_count{{{labels}}} {cumulative}")
        lines += [
            "# HELP descent_http_requests_in_progress HTTP requests being handled now.",
            "# TYPE descent_http_requests_in_progress gauge",
            f"descent_http_requests_in_progress {self.in_progress}",
            "# HELP process_start_time_seconds Start time of the process since the Unix epoch, in seconds.",
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {self.started_at!r}",
        ]
        for name, help_text, read in self.gauges:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {read()}"]
        return "\n".join(lines) + "\n"
