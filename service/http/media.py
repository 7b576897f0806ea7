"""Media types and their negotiation: the body a request sent (Content-Type), the answer it wants (Accept).

Every router that looks at ``Content-Type`` or ``Accept`` goes through these functions, so that
``application/json; charset=utf-8``, ``application/problem+json`` and parameters in any case are
understood alike everywhere, and a refusal (415) is worded alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from service.errors import UnsupportedMediaType

JSON_MEDIA_TYPE = "application/json"
CSV_MEDIA_TYPE = "text/csv"
NPZ_MEDIA_TYPE = "application/x-npz"
OCTET_STREAM_MEDIA_TYPE = "application/octet-stream"
EVENT_STREAM_MEDIA_TYPE = "text/event-stream"

MediaType = tuple[str, dict[str, str]]


def parse_media_type(value: str | None) -> MediaType:
    """``"Text/CSV; charset=UTF-8"`` → ``("text/csv", {"charset": "utf-8"})``, names and values lowercased."""
    media, _, rest = (value or "").partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        key, sep, val = part.partition("=")
        if sep:
            params[key.strip().lower()] = val.strip().strip('"').lower()
    return media.strip().lower(), params


def is_json(media: str) -> bool:
    """``application/json`` or a structured ``application/*+json`` type (media type without parameters)."""
    return media == JSON_MEDIA_TYPE or (media.startswith("application/") and media.endswith("+json"))


def _refuse(content_type: str | None, wanted: str) -> UnsupportedMediaType:
    shown = repr(content_type) if content_type else "none"
    return UnsupportedMediaType(f"the request body must be {wanted}, got Content-Type {shown}")


def check_json_content_type(content_type: str | None) -> None:
    """Accept ``application/json`` and ``application/*+json`` (any parameters); 415 otherwise."""
    if content_type == JSON_MEDIA_TYPE:  # the usual case, without parsing
        return
    if not is_json(parse_media_type(content_type)[0]):
        raise _refuse(content_type, f"JSON (Content-Type: {JSON_MEDIA_TYPE})")


def content_kind(content_type: str | None, offered: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Which of the ``offered`` body formats a request sent, and the Content-Type's parameters.

    Parameters
    ----------
    content_type : str or None
        The request's ``Content-Type`` header.
    offered : mapping of str to str
        Media type → the name the caller knows the format by, e.g. ``{"application/json": "json",
        "text/csv": "csv"}``; ``application/json`` also stands for every ``application/*+json`` type.

    Returns
    -------
    (str, dict)
        The format's name and the header's parameters (e.g. ``{"charset": "utf-8"}``).

    Raises
    ------
    UnsupportedMediaType
        415 naming every offered media type.
    """
    media, params = parse_media_type(content_type)
    if is_json(media) and JSON_MEDIA_TYPE in offered:
        return offered[JSON_MEDIA_TYPE], params
    if media in offered:
        return offered[media], params
    names = list(offered)
    wanted = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    raise _refuse(content_type, wanted)


def _specificity(media_range: str, media: str) -> int | None:
    """How precisely ``media_range`` (``*/*``, ``text/*``, ``text/csv``) matches ``media``; None if not."""
    if media_range == media:
        return 2
    kind, _, subtype = media_range.partition("/")
    if subtype == "*" and (kind == "*" or media.startswith(kind + "/")):
        return 0 if kind == "*" else 1
    return None


def preferred_media_type(accept: str | None, offered: Sequence[str]) -> str:
    """The ``offered`` media type the ``Accept`` header prefers (RFC 9110 §12.5.1).

    Each offered type takes the quality of the most specific range that matches it; the highest
    quality wins, and the first offered type wins ties. Without an Accept header, or when it accepts
    none of them, the first offered type is the answer (the service does not answer 406).
    """
    if not accept:
        return offered[0]
    best, best_q = offered[0], -1.0
    for media in offered:
        q, precision = 0.0, -1
        for entry in accept.split(","):
            media_range, params = parse_media_type(entry)
            match = _specificity(media_range, media)
            if match is None or match < precision:
                continue
            try:
                quality = float(params.get("q", "1"))
            except ValueError:
                quality = 0.0
            q = quality if match > precision else max(q, quality)
            precision = match
        if q > best_q:
            best, best_q = media, q
    return best
