"""Tests for the QR payload format (physical.sheets.payload) and sheet geometry (physical.sheets.layout)."""
from __future__ import annotations

import itertools
import json

import cv2
import numpy as np
import pytest

from physical.capture.register import NEIGHBOUR_PITCHES
from physical.sheets import layout, payload
from physical.sheets.layout import Rect
from physical.sheets.payload import MarkerPayload, PayloadError

EXP = "3f9a2c1b"
VARIANTS_13 = ["clean"] + [f"{m}_eps{e}" for m in ("fgsm", "bim", "llc") for e in (2, 4, 8, 16)]


# ---------------------------------------------------------------- payload


def test_encode_exact_text() -> None:
    assert payload.encode(EXP, 3, "TL") == "PHYS1:3f9a2c1b:3:TL"
    assert payload.encode(EXP, 999, "BR") == "PHYS1:3f9a2c1b:999:BR"


@pytest.mark.parametrize("corner", payload.CORNERS)
@pytest.mark.parametrize("page", [1, 7, 42, 999])
def test_payload_round_trip(page: int, corner: str) -> None:
    text = payload.encode(EXP, page, corner)
    assert len(text) <= 21
    assert payload.decode(text, experiment_id=EXP, n_pages=999) == MarkerPayload(1, EXP, page, corner)
    assert payload.decode(text) == MarkerPayload(payload.FORMAT_VERSION, EXP, page, corner)


@pytest.mark.parametrize(
    "args",
    [("3F9A2C1B", 1, "TL"), ("3f9a2c1", 1, "TL"), ("3f9a2c1bb", 1, "TL"), ("3f9a2c1g", 1, "TL"),
     (EXP, 0, "TL"), (EXP, 1000, "TL"), (EXP, True, "TL"), (EXP, 1.0, "TL"), (EXP, 1, "tl"), (EXP, 1, "XX")],
)
def test_encode_rejects_invalid(args: tuple) -> None:
    with pytest.raises(PayloadError):
        payload.encode(*args)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("QRX1:3f9a2c1b:3:TL", "prefix"),
        ("phys1:3f9a2c1b:3:TL", "prefix"),
        ("PHYS2:3f9a2c1b:3:TL", "version"),
        ("PHYS:3f9a2c1b:3:TL", "malformed"),
        ("PHYS1:3F9A2C1B:3:TL", "experiment id"),
        ("PHYS1:3f9a2c1:3:TL", "experiment id"),
        ("PHYS1:3f9a2c1bb:3:TL", "experiment id"),
        ("PHYS1:../../etc:3:TL", "experiment id"),
        ("PHYS1:3f9a2c1b:0:TL", "page"),
        ("PHYS1:3f9a2c1b:03:TL", "page"),
        ("PHYS1:3f9a2c1b:1000:TL", "page"),
        ("PHYS1:3f9a2c1b:-1:TL", "page"),
        ("PHYS1:3f9a2c1b:x:TL", "page"),
        ("PHYS1:3f9a2c1b:3:tl", "corner"),
        ("PHYS1:3f9a2c1b:3:XX", "corner"),
        ("PHYS1:3f9a2c1b:3:", "corner"),
        ("PHYS1:3f9a2c1b:3:TL:extra", "malformed"),
        ("PHYS1:3f9a2c1b:3", "malformed"),
        ("PHYS1:3f9a2c1b:3:TL" + "0" * 50, "too long"),
        ("PHYS1:3f9a2c1b:3:TLé", "ASCII"),
        ("PHYS1:3f9a2c1b:3:ТL", "ASCII"),  # Cyrillic Т
        ("PHYS1:3f9a2c1b:3:TL\n", "whitespace"),
        (" PHYS1:3f9a2c1b:3:TL", "whitespace"),
        ("PHYS1:3f9a2c1b: 3:TL", "whitespace"),
        ("PHYS1:3f9a2c1b:3:T\tL", "whitespace"),
        ("PHYS1:3f9a2c1b:3:TL\x00", "control"),
        ("", "prefix"),
    ],
)
def test_decode_rejects_invalid(text: str, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        payload.decode(text)


def test_decode_rejects_other_experiment_naming_both() -> None:
    with pytest.raises(PayloadError) as info:
        payload.decode("PHYS1:aaaaaaaa:3:TL", experiment_id=EXP)
    assert "aaaaaaaa" in str(info.value) and EXP in str(info.value)


def test_decode_rejects_page_beyond_n_pages() -> None:
    assert payload.decode("PHYS1:3f9a2c1b:3:TL", n_pages=3).page == 3
    with pytest.raises(PayloadError, match="out of range 1..2"):
        payload.decode("PHYS1:3f9a2c1b:3:TL", n_pages=2)


def test_payload_error_is_value_error() -> None:
    assert issubclass(PayloadError, ValueError)


# ---------------------------------------------------------------- layout helpers


def _gap(a: Rect, b: Rect) -> float:
    """White distance between two rects (Chebyshev-style; <= 0 when they overlap)."""
    dx = max(b.x - a.right, a.x - b.right)
    dy = max(b.y - a.bottom, a.y - b.bottom)
    return max(dx, dy)


def _inside(r: Rect, outer: Rect, tol: float = 1e-9) -> bool:
    return (r.x >= outer.x - tol and r.y >= outer.y - tol
            and r.right <= outer.right + tol and r.bottom <= outer.bottom + tol)


def _check_page_geometry(page: layout.Page) -> None:
    w, h = page.size_mm
    printable = Rect(layout.MARGIN_MM, layout.MARGIN_MM, w - 2 * layout.MARGIN_MM, h - 2 * layout.MARGIN_MM)
    gap = layout.slot_gap_mm(page.image_size_mm)
    assert gap >= 4.0 and gap >= 0.15 * page.image_size_mm
    quiet = [m.rect.expanded(layout.QR_QUIET_MM) for m in page.markers]
    texts = [layout.header_rect(page), layout.footer_rect(page)]
    for s in page.slots:
        assert s.rect.w == s.rect.h == page.image_size_mm
        assert _inside(s.rect, printable)
        lab = layout.label_rect(s.rect)
        assert _inside(lab, printable)
        assert _gap(s.rect, lab) >= gap / 2 - 1e-9
        for m in page.markers:
            assert _gap(s.rect, m.rect) >= max(gap, layout.QR_QUIET_MM) - 1e-9
        for q in quiet + texts:
            assert _gap(s.rect, q) > 0 and _gap(lab, q) > 0
    for a, b in itertools.combinations(page.slots, 2):
        assert _gap(a.rect, b.rect) >= gap - 1e-9, (a, b)
        # A label never touches another image.
        assert _gap(layout.label_rect(a.rect), b.rect) > 0 and _gap(layout.label_rect(b.rect), a.rect) > 0
    for m in page.markers:
        assert _inside(m.rect, printable)
        assert _inside(m.rect.expanded(layout.QR_QUIET_MM), Rect(0, 0, w, h))
    for q, t in itertools.product(quiet, texts):
        assert _gap(q, t) > 0
    for t in texts:
        assert _inside(t, printable)


# ---------------------------------------------------------------- layout


def test_constants_documented_values() -> None:
    assert layout.PAPER_SIZES_MM == {"a4": (210.0, 297.0), "letter": (215.9, 279.4)}
    assert 8 <= layout.MARGIN_MM <= 10
    assert layout.QR_SIZE_MM == 20.0
    assert layout.DEFAULT_IMAGE_SIZE_MM == 25.0
    # QR standard: quiet zone of 4 modules of the 25-module code.
    assert layout.QR_QUIET_MM >= 4 * layout.QR_SIZE_MM / 25


def test_a4_default_exact_positions() -> None:
    groups = [(f"img{i:03d}", VARIANTS_13) for i in range(5)]
    pages = layout.plan_pages(groups, EXP)
    # 6 columns of 25 mm fit in 190 mm, 6 rows fit: 13 variants take 3 rows, 2 pictures per page.
    assert [p.number for p in pages] == [1, 2, 3]
    assert [sorted({s.image_id for s in p.slots}) for p in pages] == [
        ["img000", "img001"], ["img002", "img003"], ["img004"]]
    p1 = pages[0]
    assert p1.paper == "a4" and p1.size_mm == (210.0, 297.0) and p1.image_size_mm == 25.0
    assert {m.corner: (m.payload, m.rect) for m in p1.markers} == {
        "TL": ("PHYS1:3f9a2c1b:1:TL", Rect(10.0, 10.0, 20.0, 20.0)),
        "TR": ("PHYS1:3f9a2c1b:1:TR", Rect(180.0, 10.0, 20.0, 20.0)),
        "BR": ("PHYS1:3f9a2c1b:1:BR", Rect(180.0, 267.0, 20.0, 20.0)),
        "BL": ("PHYS1:3f9a2c1b:1:BL", Rect(10.0, 267.0, 20.0, 20.0)),
    }
    assert [m.corner for m in p1.markers] == list(payload.CORNERS)
    s = p1.slots
    assert [x.index for x in s] == list(range(26))
    assert (s[0].image_id, s[0].variant, s[0].label) == ("img000", "clean", "img000 · clean")
    assert s[0].rect == Rect(17.5, 35.0, 25.0, 25.0)
    assert s[1].rect == Rect(47.5, 35.0, 25.0, 25.0)
    assert s[5].rect == Rect(167.5, 35.0, 25.0, 25.0)
    assert s[6].rect == Rect(17.5, 70.5, 25.0, 25.0)  # row pitch 25 + 2.5 + 3 + 5
    assert s[12].rect == Rect(17.5, 106.0, 25.0, 25.0)  # the 13th variant, alone on its row
    assert (s[13].image_id, s[13].rect) == ("img001", Rect(17.5, 141.5, 25.0, 25.0))  # new picture, new row
    assert layout.label_rect(s[0].rect) == Rect(17.5, 62.5, 25.0, 3.0)
    assert pages[2].markers[0].payload == "PHYS1:3f9a2c1b:3:TL"


def test_letter_paper() -> None:
    pages = layout.plan_pages([("a", VARIANTS_13)], EXP, paper="letter")
    (page,) = pages
    assert page.paper == "letter" and page.size_mm == (215.9, 279.4)
    corners = {m.corner: m.rect for m in page.markers}
    assert corners["TR"] == Rect(185.9, 10.0, 20.0, 20.0)
    assert corners["BR"] == Rect(185.9, 249.4, 20.0, 20.0)
    assert corners["BL"] == Rect(10.0, 249.4, 20.0, 20.0)
    assert page.slots[0].rect.x == pytest.approx(20.45)
    _check_page_geometry(page)
    assert layout.plan_pages([("a", VARIANTS_13)], EXP, paper="LETTER")[0].paper == "letter"


@pytest.mark.parametrize("paper", ["a4", "letter"])
@pytest.mark.parametrize("image_size", [8.0, 25.0, 33.3, 38.0])
def test_geometry_invariants(paper: str, image_size: float) -> None:
    groups = [(f"p{i}", VARIANTS_13[: 1 + (3 * i) % 13]) for i in range(9)] + [("big", VARIANTS_13)]
    pages = layout.plan_pages(groups, EXP, paper=paper, image_size_mm=image_size)
    where: dict[str, int] = {}
    for page in pages:
        _check_page_geometry(page)
        for s in page.slots:
            # All variants of a picture on the same page.
            assert where.setdefault(s.image_id, page.number) == page.number
        # Each picture starts on a new row, below everything of the previous picture,
        # and its variants keep their print order.
        ids = list(dict.fromkeys(s.image_id for s in page.slots))
        for prev, cur in zip(ids, ids[1:]):
            last_prev = max(s.rect.y for s in page.slots if s.image_id == prev)
            assert min(s.rect.y for s in page.slots if s.image_id == cur) > last_prev
        for image_id in ids:
            assert [s.variant for s in page.slots if s.image_id == image_id] == dict(groups)[image_id]
    assert list(where) == [g[0] for g in groups]  # input order kept
    # Greedy: the first picture of each next page did not fit on the previous one.
    assert [p.number for p in pages] == list(range(1, len(pages) + 1))


def test_labels_use_variant_labels() -> None:
    (page,) = layout.plan_pages([("img003", ["clean", "bim_eps8"])], EXP, variant_labels={"bim_eps8": "bim ε8"})
    assert [s.label for s in page.slots] == ["img003 · clean", "img003 · bim ε8"]


def test_too_large_image_size_names_a_size_that_fits() -> None:
    with pytest.raises(ValueError, match=r"--image-size-mm 38\.1 or less") as info:
        layout.plan_pages([("img007", VARIANTS_13)], EXP, image_size_mm=60)
    assert "img007" in str(info.value) and "13 variants" in str(info.value)
    assert layout.max_image_size_mm(13, "a4") == 38.1
    assert len(layout.plan_pages([("img007", VARIANTS_13)], EXP, image_size_mm=38.1)) == 1
    with pytest.raises(ValueError):
        layout.plan_pages([("img007", VARIANTS_13)], EXP, image_size_mm=38.2)
    with pytest.raises(ValueError, match="image-size-mm 150.8 or less"):
        layout.plan_pages([("x", ["clean"])], EXP, image_size_mm=250)
    with pytest.raises(ValueError, match="fewer variants"):
        layout.plan_pages([("x", [f"v{i}" for i in range(2000)])], EXP)


@pytest.mark.parametrize(
    ("kwargs", "groups", "match"),
    [
        ({"paper": "a3"}, [("a", ["clean"])], "unknown paper 'a3'"),
        ({"image_size_mm": 0}, [("a", ["clean"])], "positive"),
        ({"image_size_mm": float("nan")}, [("a", ["clean"])], "positive"),
        ({}, [("a", [])], "no variants"),
        ({}, [("a", ["clean", "clean"])], "twice"),
        ({}, [("a", ["clean"]), ("a", ["clean"])], "twice"),
    ],
)
def test_plan_pages_rejects(kwargs: dict, groups: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        layout.plan_pages(groups, EXP, **kwargs)


def test_plan_pages_rejects_bad_experiment_id() -> None:
    with pytest.raises(ValueError):
        layout.plan_pages([("a", ["clean"])], "XYZ")


def test_page_dict_round_trip_through_json() -> None:
    pages = layout.plan_pages([(f"img{i}", VARIANTS_13) for i in range(3)], EXP, paper="letter",
                              image_size_mm=23.7, variant_labels={"bim_eps8": "bim ε8"})
    for page in pages:
        d = layout.page_to_dict(page)
        assert d["markers"][0]["rect"] == [10.0, 10.0, 20.0, 20.0]
        again = layout.page_from_dict(json.loads(json.dumps(d, ensure_ascii=False)))
        assert again == page
        assert layout.page_to_dict(again) == d


def test_page_from_dict_rejects_broken_entry() -> None:
    d = layout.page_to_dict(layout.plan_pages([("a", ["clean"])], EXP)[0])
    del d["slots"][0]["rect"]
    with pytest.raises(ValueError, match="manifest"):
        layout.page_from_dict(d)
    d = layout.page_to_dict(layout.plan_pages([("a", ["clean"])], EXP)[0])
    d["markers"][0]["rect"] = [1, 2, 3]
    with pytest.raises(ValueError):
        layout.page_from_dict(d)


def test_rect_and_mm_to_px() -> None:
    r = Rect(17.5, 35.0, 25.0, 25.0)
    assert r.as_list() == [17.5, 35.0, 25.0, 25.0]
    assert r.corners() == ((17.5, 35.0), (42.5, 35.0), (42.5, 60.0), (17.5, 60.0))
    assert layout.mm_to_px(r, 10.0) == (175, 350, 425, 600)
    assert layout.mm_to_px(r, 200 / 25.4) == (138, 276, 335, 472)


def _hull_covers(points: np.ndarray, rect: Rect) -> bool:
    hull = cv2.convexHull(points.astype(np.float32))
    return all(cv2.pointPolygonTest(hull, (float(x), float(y)), False) >= 0 for x, y in rect.corners())


@pytest.mark.parametrize("paper", ["a4", "letter"])
@pytest.mark.parametrize("image_size", [8.0, 25.0, 45.0])
def test_registration_marks_surround_every_image(paper: str, image_size: float) -> None:
    most = 13 if image_size < 40 else 6
    groups = [(f"p{i}", VARIANTS_13[: 1 + (5 * i) % most]) for i in range(12)]
    pages = layout.plan_pages(groups, EXP, paper=paper, image_size_mm=image_size)
    pitch = image_size + layout.slot_gap_mm(image_size)
    for page in pages:
        ids = [m.id for m in page.marks]
        assert len(set(ids)) == len(ids) and page.marks
        block = layout.MARK_IDS // layout.MARK_ID_BLOCKS
        assert {i // block for i in ids} == {(page.number - 1) % layout.MARK_ID_BLOCKS}
        side = layout.mark_side_mm(image_size)
        keep_out = [m.rect.expanded(layout.QR_QUIET_MM) for m in page.markers]
        keep_out += [s.rect for s in page.slots] + [layout.label_rect(s.rect) for s in page.slots]
        keep_out += [layout.header_rect(page), layout.footer_rect(page)]
        for mk in page.marks:
            assert mk.rect.w == mk.rect.h == side
            zone = mk.rect.expanded(layout.MARK_QUIET_MM)
            assert zone.x >= layout.MARGIN_MM and zone.right <= page.size_mm[0] - layout.MARGIN_MM
            for k in keep_out:
                assert not (zone.x < k.right and k.x < zone.right and zone.y < k.bottom and k.y < zone.bottom), mk
        # With every mark found, ingest can register every image: it lies inside the hull of the
        # marks and codes that ingest may use for it (within NEIGHBOUR_PITCHES of its centre).
        groups_pts = [np.array(m.rect.corners()) for m in page.marks] + [np.array(m.rect.corners())
                                                                         for m in page.markers]
        for slot in page.slots:
            c = np.array([slot.rect.x + slot.rect.w / 2, slot.rect.y + slot.rect.h / 2])
            near = [g for g in groups_pts if np.linalg.norm(g.mean(0) - c) <= NEIGHBOUR_PITCHES * pitch]
            assert _hull_covers(np.concatenate(near), slot.rect), (page.number, slot.index)


def test_a4_default_marks_exact_positions() -> None:
    (page,) = layout.plan_pages([("img000", VARIANTS_13)], EXP)
    assert layout.mark_side_mm(25.0) == 4.0
    # Above the first row, in the column gaps (the outer two touch the corner codes' quiet zones).
    assert page.marks[0] == layout.Mark(0, Rect(43.0, 30.5, 4.0, 4.0))
    # Below the first row: centred in the 10.5 mm between its images and the next row, from the grid's left side.
    first_below = [m for m in page.marks if m.rect.y > 35.0][0]
    assert first_below.rect == Rect(13.0, 63.25, 4.0, 4.0)
    assert layout.plan_pages([("img000", VARIANTS_13)], EXP, marks=False)[0].marks == ()
    assert layout.mark_id(2, 0) == 250 and layout.mark_id(5, 3) == 3


def test_page_dict_round_trip_keeps_marks() -> None:
    (page,) = layout.plan_pages([("img000", VARIANTS_13)], EXP)
    back = layout.page_from_dict(json.loads(json.dumps(layout.page_to_dict(page))))
    assert back == page and back.marks
