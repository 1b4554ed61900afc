"""The text stored in each corner QR code of a printed sheet.

This module is the only place that knows the payload format::

    PHYS1:<experiment id>:<page>:<corner>      e.g.  PHYS1:3f9a2c1b:3:TL

* ``PHYS`` + the format version (``1``) lets ingest reject codes that belong
  to something else (a QR code on a poster in the background of the photo)
  and codes written by a future, incompatible format.
* the experiment id is exactly 8 lowercase hex characters, so a photo of a
  sheet from another experiment is caught instead of silently mis-cropped;
* the page number (1..999) picks the page layout in the manifest;
* the corner (TL, TR, BR, BL) tells ingest which marker it sees, so the
  homography is right even when the photo is rotated or upside down.

The payload is kept short so that it fits a small, coarse QR code (version 2 at
error correction level M, 25 x 25 modules), which survives a phone photo well.
It is data only: nothing in it is ever used as a file path.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

FORMAT_VERSION = 1
CORNERS = ("TL", "TR", "BR", "BL")

_PREFIX = "PHYS"
MAX_PAGE = 999
MAX_PAYLOAD_CHARS = 64

_EXPERIMENT_ID_RE = re.compile(r"[0-9a-f]{8}")
# Deliberately loose on the fields so that decode can name the field that is
# wrong; each field is then checked strictly on its own.
_PAYLOAD_RE = re.compile(r"PHYS(?P<version>[0-9]+):(?P<experiment_id>[^:]*):(?P<page>[^:]*):(?P<corner>[^:]*)")
_PAGE_RE = re.compile(r"[1-9][0-9]{0,2}")


class PayloadError(ValueError):
    """A QR payload that is not a valid marker of the expected experiment."""


@dataclass(frozen=True)
class MarkerPayload:
    """The decoded content of one corner marker."""

    version: int
    experiment_id: str
    page: int
    corner: str


def check_experiment_id(experiment_id: str) -> str:
    """Return ``experiment_id`` if it is exactly 8 lowercase hex characters.

    Raises:
        PayloadError: otherwise.
    """
    if not isinstance(experiment_id, str) or not _EXPERIMENT_ID_RE.fullmatch(experiment_id):
        raise PayloadError(f"experiment id must be 8 lowercase hex characters, got {experiment_id!r}")
    return experiment_id


def encode(experiment_id: str, page: int, corner: str) -> str:
    """Return the payload for the marker in ``corner`` of ``page``.

    Raises:
        PayloadError: on a bad experiment id, a page outside 1..999 or an
            unknown corner, so that an invalid code is never printed.
    """
    check_experiment_id(experiment_id)
    # bool is an int subclass; True would silently print as page "True".
    if not isinstance(page, int) or isinstance(page, bool) or not 1 <= page <= MAX_PAGE:
        raise PayloadError(f"page must be an integer in 1..{MAX_PAGE}, got {page!r}")
    if corner not in CORNERS:
        raise PayloadError(f"unknown corner {corner!r} (expected one of {', '.join(CORNERS)})")
    return f"{_PREFIX}{FORMAT_VERSION}:{experiment_id}:{page}:{corner}"


def decode(text: str, *, experiment_id: str | None = None, n_pages: int | None = None) -> MarkerPayload:
    """Parse and strictly validate a QR payload.

    Args:
        text: the decoded QR text, exactly as the detector returned it.
        experiment_id: if given, the payload must belong to this experiment.
        n_pages: if given, the page number must be in ``1..n_pages``.

    Raises:
        PayloadError: with a short reason for anything that is not a valid
            payload of the expected experiment.
    """
    if not isinstance(text, str):
        raise PayloadError(f"payload must be text, got {type(text).__name__}")
    # Length first, so that error messages never echo a huge string.
    if len(text) > MAX_PAYLOAD_CHARS:
        raise PayloadError(f"payload too long ({len(text)} > {MAX_PAYLOAD_CHARS} characters)")
    if not text.isascii():
        raise PayloadError(f"payload is not ASCII: {text!r}")
    if any(ch.isspace() for ch in text) or not text.isprintable():
        raise PayloadError(f"payload contains whitespace or control characters: {text!r}")
    if not text.startswith(_PREFIX):
        raise PayloadError(f"not a marker of this tool (expected prefix {_PREFIX!r}): {text!r}")
    m = _PAYLOAD_RE.fullmatch(text)
    if m is None:
        raise PayloadError(f"malformed payload (expected PHYS<version>:<experiment>:<page>:<corner>): {text!r}")
    version = int(m["version"])
    if version != FORMAT_VERSION:
        raise PayloadError(f"unknown payload format version {version} (this tool reads version {FORMAT_VERSION})")
    found_id = check_experiment_id(m["experiment_id"])
    if experiment_id is not None and found_id != experiment_id:
        raise PayloadError(f"marker belongs to experiment {found_id}, expected experiment {experiment_id}")
    if not _PAGE_RE.fullmatch(m["page"]):
        raise PayloadError(f"bad page number {m['page']!r} (expected 1..{MAX_PAGE})")
    page = int(m["page"])
    if n_pages is not None and page > n_pages:
        raise PayloadError(f"page {page} out of range 1..{n_pages}")
    if m["corner"] not in CORNERS:
        raise PayloadError(f"unknown corner {m['corner']!r} (expected one of {', '.join(CORNERS)})")
    return MarkerPayload(version=version, experiment_id=found_id, page=page, corner=m["corner"])
