"""Corner text on the image: which fields go in which corner, and each field's text (Qt-free).

Header fields come from the DICOM header (:func:`header_values`); view fields (window/level,
zoom, pixel-spacing source, frame) come from the view showing the image
(:func:`view_values`). A layout maps each corner to the fields it shows, top to bottom; it
is plain data (``{"top_left": ["patient_name", ...], ...}``) so a setting can hold it, and
:func:`check_layout` refuses one naming a corner or field that does not exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from medviewer.dicom.display_text import dicom_date, dicom_time, patient_age, person_name
from medviewer.errors import UserError

# field -> its name in menus and settings
FIELDS: dict[str, str] = {
    "patient_name": "Patient name",
    "patient_id": "Patient ID",
    "age_sex": "Age / sex",
    "study_date_time": "Study date / time",
    "study_description": "Study description",
    "modality": "Modality",
    "view": "View position / laterality",
    "institution": "Institution",
    "series_instance": "Series / instance number",
    "window_level": "Window / level",
    "zoom": "Zoom",
    "spacing_source": "Pixel spacing source",
    "frame": "Frame",
}
VIEW_FIELDS = ("window_level", "zoom", "spacing_source", "frame")
CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
DEFAULT_LAYOUT: dict[str, tuple[str, ...]] = {
    "top_left": ("patient_name", "patient_id", "age_sex"),
    "top_right": ("institution", "study_date_time", "study_description"),
    "bottom_left": ("modality", "view", "series_instance", "frame"),
    "bottom_right": ("window_level", "zoom", "spacing_source"),
}

Layout = dict[str, tuple[str, ...]]


def check_layout(layout: Mapping[str, Sequence[str]]) -> Layout:
    """The layout with every corner present (empty where not given); UserError when it
    names a corner or a field that does not exist."""
    checked: Layout = {corner: () for corner in CORNERS}
    for corner, fields in layout.items():
        if corner not in CORNERS:
            raise UserError(f"The corner text layout names a corner '{corner}' that does not "
                            f"exist (use {', '.join(CORNERS)}).")
        if isinstance(fields, str) or not isinstance(fields, Sequence):
            raise UserError(f"The corner text layout's '{corner}' must be a list of fields.")
        unknown = [name for name in fields if name not in FIELDS]
        if unknown:
            raise UserError(f"The corner text layout names a field '{unknown[0]}' that does "
                            f"not exist (use {', '.join(FIELDS)}).")
        checked[corner] = tuple(dict.fromkeys(fields))
    return checked


def _get(ds: Any, keyword: str) -> str:
    """A header value as text; '' when absent or not convertible (damaged files)."""
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - one bad value must not hide the others
        return ""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1", "replace").strip(" \x00")
    try:
        if isinstance(value, Sequence) and not isinstance(value, str):  # MultiValue
            return "\\".join(str(v) for v in value).strip()
        return str(value).strip()
    except Exception:  # noqa: BLE001
        return ""


def header_values(ds: Any) -> dict[str, str]:
    """Each header field's text ('' when the file does not say) from a pydicom Dataset.

    A PNG/JPEG's stand-in header names no patient: its corners say so instead of showing
    the stand-in's made-up name and ID."""
    from medviewer.dicom.images import is_synthetic_header

    if is_synthetic_header(ds):
        return {"patient_name": "Plain image: no patient data"}
    values: dict[str, str] = {}
    name = _get(ds, "PatientName")
    values["patient_name"] = person_name(name) if name else ""
    patient_id = _get(ds, "PatientID")
    issuer = _get(ds, "IssuerOfPatientID")
    values["patient_id"] = (f"ID {patient_id}" + (f" ({issuer})" if issuer else "")
                            if patient_id else "")
    study_date = _get(ds, "StudyDate")
    age = patient_age(_get(ds, "PatientAge"), _get(ds, "PatientBirthDate"), study_date)
    sex = _get(ds, "PatientSex").upper()
    values["age_sex"] = ", ".join(part for part in (age, sex) if part)
    when = " ".join(part for part in (dicom_date(study_date), dicom_time(_get(ds, "StudyTime")))
                    if part)
    values["study_date_time"] = when
    values["study_description"] = _get(ds, "StudyDescription")
    modality = _get(ds, "Modality")
    body_part = _get(ds, "BodyPartExamined")
    values["modality"] = " ".join(part for part in (modality, body_part) if part)
    laterality = _get(ds, "ImageLaterality") or _get(ds, "Laterality")
    view = [_get(ds, "ViewPosition"), laterality]
    values["view"] = " ".join(part for part in view if part)
    values["institution"] = _get(ds, "InstitutionName")
    series, instance = _get(ds, "SeriesNumber"), _get(ds, "InstanceNumber")
    values["series_instance"] = " / ".join(part for part in (
        f"Se {series}" if series else "", f"Im {instance}" if instance else "") if part)
    return values


def view_values(window: str = "", zoom_percent: float | None = None, spacing: str = "",
                frame: int = 0, frames: int = 1) -> dict[str, str]:
    """The view fields' text: ``window`` as the view describes it ('C 40 / W 400'),
    ``spacing`` the pixel spacing's source as said to the user ('' when none)."""
    return {
        "window_level": window,
        "zoom": f"Zoom {zoom_percent:.0f} %" if zoom_percent else "",
        "spacing_source": f"Spacing: {spacing}" if spacing else "No pixel spacing (px)",
        "frame": f"Frame {frame + 1} / {frames}" if frames > 1 else "",
    }


def corner_lines(layout: Mapping[str, Sequence[str]],
                 values: Mapping[str, str]) -> dict[str, list[str]]:
    """Each corner's lines, top to bottom, leaving out fields with no text."""
    return {corner: [values[name] for name in layout.get(corner, ()) if values.get(name)]
            for corner in CORNERS}
