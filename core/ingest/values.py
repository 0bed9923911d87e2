"""Lenient readers for DICOM header values, each returning a value and findings.

The checks here decide what is stored, so findings come from explicit checks of the
raw bytes (DICOM PS3.5 section 6.2 value representations), never from warnings that
pydicom emits while converting values.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydicom import charset
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

# Longest value, in characters, that PS3.5 table 6.2-1 allows for each string VR used.
MAX_LENGTH = {"UI": 64, "LO": 64, "SH": 16, "CS": 16, "DS": 16, "IS": 12}
UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
TIME_PATTERN = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$")
# Longest value copied into a finding message, so large values stay out of the database.
MESSAGE_VALUE_CHARS = 80


@dataclass(frozen=True)
class Finding:
    """A header quirk of one instance: a code, a plain message and the element path."""

    code: str
    message: str
    path: str | None = None
    blocking: bool = False


def shorten(value: str) -> str:
    """Return the value cut to a length that is safe to copy into a message."""
    if len(value) <= MESSAGE_VALUE_CHARS:
        return value
    return f"{value[:MESSAGE_VALUE_CHARS]}... ({len(value)} characters)"


def raw_bytes(ds: Dataset, tag: int) -> bytes | None:
    """Return the element's undecoded value, or None when the element is absent."""
    item = ds.get_item(BaseTag(Tag(tag)))
    if item is None:
        return None
    if isinstance(item, RawDataElement):
        value = item.value
        return b"" if value is None else bytes(value)
    value = item.value
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", errors="replace")


def python_encodings(ds: Dataset) -> tuple[list[str], list[Finding]]:
    """Map (0008,0005) Specific Character Set to Python codecs (DICOM PS3.3 C.12.1.1.2).

    An unknown term falls back to the default repertoire read as Latin-1, so no byte
    ever fails to decode, and is reported.
    """
    raw = raw_bytes(ds, 0x00080005)
    if raw is None:
        return ["iso8859"], []
    terms = [term.strip() for term in raw.decode("latin-1").split("\\")]
    if not any(terms):
        return ["iso8859"], []
    encodings: list[str] = []
    findings: list[Finding] = []
    for term in terms:
        codec = charset.python_encoding.get(term)
        if codec is None:
            findings.append(
                Finding(
                    "charset_unknown",
                    f"Specific Character Set {shorten(term)!r} is not a defined term; "
                    "text was read as Latin-1",
                    "SpecificCharacterSet",
                )
            )
            codec = "iso8859"
        encodings.append(codec)
    return encodings, findings


def decode_text(
    raw: bytes, encodings: list[str], keyword: str, findings: list[Finding]
) -> str:
    """Decode a text value strictly, or with replacement characters and a finding."""
    if len(encodings) == 1:
        try:
            return raw.decode(encodings[0])
        except (UnicodeDecodeError, LookupError):
            pass
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                return charset.decode_bytes(raw, encodings, set())
            except (UnicodeDecodeError, LookupError, UserWarning):
                pass
    findings.append(
        Finding(
            "charset_mismatch",
            f"{keyword} does not decode with the declared Specific Character Set; "
            "undecodable bytes were replaced",
            keyword,
        )
    )
    return raw.decode(
        encodings[0] if encodings[0] != "iso2022_jp" else "latin-1", errors="replace"
    )


def text_value(
    ds: Dataset,
    tag: int,
    keyword: str,
    encodings: list[str],
    findings: list[Finding],
    *,
    vr: str = "LO",
) -> str | None:
    """Return a stripped text value as sent, None when absent or empty (PS3.5 6.2)."""
    raw = raw_bytes(ds, tag)
    if raw is None:
        return None
    value = decode_text(raw, encodings, keyword, findings).strip(" \x00")
    if value == "":
        return None
    limit = MAX_LENGTH.get(vr)
    if limit is not None and len(value) > limit:
        findings.append(
            Finding(
                "value_too_long",
                f"{keyword} is {len(value)} characters, over the {vr} maximum of "
                f"{limit}; stored as sent",
                keyword,
            )
        )
    return value


def ascii_value(ds: Dataset, tag: int) -> str | None:
    raw = raw_bytes(ds, tag)
    if raw is None:
        return None
    value = raw.decode("latin-1").strip(" \x00")
    return value or None


def uid_value(
    ds: Dataset, tag: int, keyword: str, findings: list[Finding]
) -> str | None:
    """Return a UID exactly as sent, flagging an over-long or malformed one.

    DICOM PS3.5 section 9.1: at most 64 characters, digits and dots only.
    """
    value = ascii_value(ds, tag)
    if value is None:
        return None
    if len(value) > MAX_LENGTH["UI"]:
        findings.append(
            Finding(
                "uid_too_long",
                f"{keyword} is {len(value)} characters, over the maximum of 64; "
                "stored as sent",
                keyword,
            )
        )
    elif not UID_PATTERN.match(value):
        findings.append(
            Finding(
                "uid_invalid",
                f"{keyword} {shorten(value)!r} is not a valid UID; stored as sent",
                keyword,
            )
        )
    return value


def date_value(
    ds: Dataset, tag: int, keyword: str, findings: list[Finding], *, required: bool
) -> date | None:
    """Parse a DA value (YYYYMMDD); anything else is flagged and stored as NULL."""
    value = ascii_value(ds, tag)
    if value is None:
        if required:
            findings.append(
                Finding("date_missing", f"{keyword} is missing or empty", keyword)
            )
        return None
    parsed = None
    if len(value) == 8 and value.isdigit():
        try:
            parsed = date(int(value[:4]), int(value[4:6]), int(value[6:]))
        except ValueError:
            parsed = None
    if parsed is None:
        findings.append(
            Finding(
                "date_invalid",
                f"{keyword} {shorten(value)!r} is not a valid date (YYYYMMDD)",
                keyword,
            )
        )
    return parsed


def check_time(ds: Dataset, tag: int, keyword: str, findings: list[Finding]) -> None:
    """Flag a TM value that is not HHMMSS.FFFFFF with hours < 24 (PS3.5 table 6.2-1)."""
    value = ascii_value(ds, tag)
    if value is None:
        return
    match = TIME_PATTERN.match(value)
    valid = match is not None
    if match is not None:
        hours, minutes, seconds = (int(part or 0) for part in match.groups()[:3])
        valid = hours < 24 and minutes < 60 and seconds < 61
    if not valid:
        findings.append(
            Finding(
                "time_invalid",
                f"{keyword} {shorten(value)!r} is not a valid time (HHMMSS)",
                keyword,
            )
        )


def number_value(
    ds: Dataset,
    tag: int,
    keyword: str,
    findings: list[Finding],
    *,
    vr: str,
    path: str | None = None,
) -> float | None:
    """Parse the first value of a DS or IS element leniently (PS3.5 table 6.2-1).

    A decimal comma is read as a point and reported; a value that still does not
    parse is reported and stored as NULL.
    """
    raw = raw_bytes(ds, tag)
    if raw is None:
        return None
    text = raw.decode("latin-1").split("\\")[0].strip(" \x00")
    if text == "":
        return None
    where = path or keyword
    try:
        return int(text) if vr == "IS" else float(text)
    except ValueError:
        pass
    if vr == "DS" and text.count(",") == 1:
        try:
            number = float(text.replace(",", "."))
        except ValueError:
            number = None
        if number is not None:
            findings.append(
                Finding(
                    "number_lenient",
                    f"{keyword} {shorten(text)!r} uses a decimal comma; read as "
                    f"{number}",
                    where,
                )
            )
            return number
    findings.append(
        Finding(
            "number_invalid",
            f"{keyword} {shorten(text)!r} is not a valid {vr} value; not stored",
            where,
        )
    )
    return None


def first_item(ds: Dataset, tag: int) -> Dataset | None:
    """Return the first item of a sequence, or None when absent, empty or malformed."""
    try:
        element: Any = ds.get(BaseTag(Tag(tag)))
    except Exception:  # noqa: BLE001 - a malformed sequence is reported by the caller
        return None
    if element is None or element.VR != "SQ" or not element.value:
        return None
    item = element.value[0]
    return item if isinstance(item, Dataset) else None
