"""DICOM values as people read them: names, dates, times and ages (Qt-free, no pixel data)."""

from __future__ import annotations

from datetime import date


def person_name(raw: object) -> str:
    """DICOM PN 'Family^Given^Middle' -> 'Family, Given Middle' (the alphabetic group)."""
    parts = [p for p in str(raw or "").split("=")[0].split("^") if p]
    if not parts:
        return "(no name)"
    return parts[0] if len(parts) == 1 else f"{parts[0]}, {' '.join(parts[1:])}"


def dicom_date(raw: object) -> str:
    """DA 'YYYYMMDD' -> 'YYYY-MM-DD'; anything else as it is."""
    text = str(raw or "").strip()
    if len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text


def dicom_time(raw: object) -> str:
    """TM 'HHMMSS.FFFFFF' (or 'HH:MM:SS') -> 'HH:MM'; '' when it is not a time."""
    text = str(raw or "").strip().replace(":", "")
    digits = text.split(".")[0]
    if len(digits) < 4 or not digits[:4].isdigit():
        return ""
    return f"{digits[:2]}:{digits[2:4]}"


def parse_date(raw: object) -> date | None:
    text = str(raw or "").strip()
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


_AGE_UNITS = {"Y": "y", "M": "mo", "W": "wk", "D": "d"}


def patient_age(age: object, birth_date: object = "", on_date: object = "") -> str:
    """Patient Age (AS, '045Y') as '45 y'; else years from birth date to ``on_date`` (DA)."""
    text = str(age or "").strip().upper()
    if len(text) == 4 and text[:3].isdigit() and text[3] in _AGE_UNITS:
        return f"{int(text[:3])} {_AGE_UNITS[text[3]]}"
    born, then = parse_date(birth_date), parse_date(on_date)
    if born is None or then is None or then < born:
        return ""
    years = then.year - born.year - ((then.month, then.day) < (born.month, born.day))
    return f"{years} y"
