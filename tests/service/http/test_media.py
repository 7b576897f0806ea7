"""service.http.media: the Content-Type a request sent and the answer its Accept header prefers."""

from __future__ import annotations

import pytest

from service.errors import UnsupportedMediaType
from service.http.media import (
    check_json_content_type,
    content_kind,
    parse_media_type,
    preferred_media_type,
)

FORMATS = {"application/json": "json", "text/csv": "csv", "application/x-npz": "npz"}


def test_parse_media_type_lowercases_and_reads_parameters() -> None:
    assert parse_media_type('Text/CSV; Charset="UTF-8" ; header=present') == (
        "text/csv",
        {"charset": "utf-8", "header": "present"},
    )
    assert parse_media_type(None) == ("", {})


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON", "application/problem+json"],
)
def test_json_and_structured_json_types_are_json(content_type: str) -> None:
    check_json_content_type(content_type)
    assert content_kind(content_type, FORMATS) == ("json", parse_media_type(content_type)[1])


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/jsonx", "text/json"])
def test_anything_else_is_refused_as_not_json(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType, match=r"must be JSON \(Content-Type: application/json\)"):
        check_json_content_type(content_type)


def test_content_kind_names_the_format_and_keeps_the_parameters() -> None:
    assert content_kind("text/csv; charset=utf-8", FORMATS) == ("csv", {"charset": "utf-8"})
    assert content_kind("application/x-npz", FORMATS) == ("npz", {})


def test_content_kind_refuses_naming_every_offered_type() -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        content_kind("image/png", FORMATS)
    assert caught.value.detail == (
        "the request body must be application/json, text/csv or application/x-npz,"
        " got Content-Type 'image/png'"
    )
    with pytest.raises(UnsupportedMediaType, match="got Content-Type none"):
        content_kind(None, FORMATS)


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "application/json"),
        ("", "application/json"),
        ("*/*", "application/json"),
        ("image/png", "application/json"),  # nothing acceptable: the default, no 406
        ("text/csv", "text/csv"),
        ("text/*", "text/csv"),
        ("text/csv, application/json", "application/json"),  # a tie: the first offered
        ("text/csv, application/json;q=0.9", "text/csv"),
        ("text/csv;q=0.5, application/json", "application/json"),
        ("text/csv;q=0.5, */*;q=0.1", "text/csv"),
        # The most specific range decides: application/json is barely acceptable, */* covers CSV.
        ("application/json;q=0.1, */*", "text/csv"),
        ("text/csv;q=bad, application/json;q=0.2", "application/json"),
    ],
)
def test_preferred_media_type_follows_quality_and_specificity(accept: str | None, chosen: str) -> None:
    assert preferred_media_type(accept, ("application/json", "text/csv")) == chosen
