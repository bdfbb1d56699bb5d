"""Build the bundled sample study (resources/sample_study) from six public chest X-rays.

    .venv/bin/python tools/make_sample_study.py            # rewrite resources/sample_study
    .venv/bin/python tools/make_sample_study.py --out DIR  # write elsewhere (the tests do)

The sources are 224x224 JPEGs of the Kermany et al. 2018 pediatric chest X-ray set (CC BY 4.0,
see resources/ATTRIBUTION.md), from ../shared/data/xray/kermany224/test. Each becomes a
Digital X-Ray (For Presentation) object, explicit VR little endian, 12 bits stored (the 8-bit
values scaled by 4095/255), with an assumed Imager Pixel Spacing, a window from the image's
own 1st-99th percentile, and a made-up patient that is obviously not a person. One NORMAL
image is stored as MONOCHROME1 (inverted values, Presentation LUT Shape INVERSE) so the
viewer's inversion shows. Everything is deterministic: UIDs come from fixed entropy sources
and no clock is read, so running the script again gives byte-identical files.

Demo data only, never for clinical use.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = PROJECT_ROOT.parent / "shared" / "data" / "xray" / "kermany224" / "test"
DEFAULT_OUT = PROJECT_ROOT / "resources" / "sample_study"

DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
ENTROPY = "medviewer sample study v1"
# Assumed, not measured: the 224x224 resize lost the real geometry (and aspect ratio). 1.2 mm
# makes a 27 cm field, typical of a young child's chest film.
ASSUMED_PIXEL_SPACING_MM = 1.2
STORED_BITS = 12

PATIENT_NAME = "DEMO^CHEST^NOT-A-PATIENT"
PATIENT_ID = "DEMO-0001"
STUDY_DATE = "20000101"  # a placeholder date, like the patient
NOT_CLINICAL = "DEMO DATA - NOT FOR CLINICAL USE"


@dataclass(frozen=True)
class Source:
    relative: str  # under the kermany224 test folder
    label: str  # NORMAL / PNEUMONIA (bacterial or viral, as the file name says)
    series: int
    monochrome1: bool = False


SOURCES = (
    Source("NORMAL/IM-0001-0001.jpeg", "NORMAL", 1),
    Source("NORMAL/IM-0003-0001.jpeg", "NORMAL", 1),
    Source("NORMAL/IM-0005-0001.jpeg", "NORMAL", 1, monochrome1=True),
    Source("PNEUMONIA/person100_bacteria_475.jpeg", "PNEUMONIA (bacterial)", 2),
    Source("PNEUMONIA/person1_virus_6.jpeg", "PNEUMONIA (viral)", 2),
    Source("PNEUMONIA/person101_bacteria_483.jpeg", "PNEUMONIA (bacterial)", 2),
)
SERIES_DESCRIPTIONS = {1: "Demo chest X-rays - NORMAL", 2: "Demo chest X-rays - PNEUMONIA"}


def uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=[ENTROPY, *map(str, parts)])


def load_grey(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])):
        raise SystemExit(f"{path} is not a grey image")
    return np.ascontiguousarray(rgb[..., 0])


def make_instance(source: Source, number: int, grey8: np.ndarray) -> Dataset:
    """One DX For Presentation object holding ``grey8`` expanded to 12 bits."""
    max_stored = 2**STORED_BITS - 1
    stored = np.rint(grey8.astype(np.float64) * max_stored / 255.0).astype(np.uint16)
    low, high = np.percentile(stored, [1, 99])
    center, width = (low + high) / 2.0, max(high - low, 1.0)
    if source.monochrome1:
        stored = (max_stored - stored).astype(np.uint16)
        center = max_stored - center

    sop_uid = uid("instance", source.relative)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = uid("implementation")
    meta.ImplementationVersionName = "MEDVIEWER_DEMO1"

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = DX_FOR_PRESENTATION
    ds.SOPInstanceUID = sop_uid
    ds.ImageType = ["DERIVED", "PRIMARY"]
    # Patient: invented, obviously not a person.
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Synthetic demo identity; sources are public de-identified images"
    # Study: one for all six images (they come from different children).
    ds.StudyInstanceUID = uid("study")
    ds.StudyDate = STUDY_DATE
    ds.StudyTime = "120000"
    ds.StudyID = "DEMO"
    ds.AccessionNumber = "DEMO0001"
    ds.StudyDescription = "Demo chest X-rays (several children, not one patient)"
    ds.ReferringPhysicianName = ""
    ds.InstitutionName = "MedViewer demo data - not a hospital"
    ds.Manufacturer = "MedViewer"
    ds.ManufacturerModelName = "tools/make_sample_study.py"
    # Series
    ds.SeriesInstanceUID = uid("series", source.series)
    ds.SeriesNumber = source.series
    ds.SeriesDescription = SERIES_DESCRIPTIONS[source.series]
    ds.Modality = "DX"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.BodyPartExamined = "CHEST"
    anatomy = Dataset()
    anatomy.CodeValue = "43799004"
    anatomy.CodingSchemeDesignator = "SCT"
    anatomy.CodeMeaning = "Chest"
    ds.AnatomicRegionSequence = Sequence([anatomy])
    ds.ImageLaterality = "U"
    ds.PatientOrientation = ""
    # Instance and provenance
    ds.InstanceNumber = number
    ds.ContentDate = STUDY_DATE
    ds.ContentTime = "120000"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "01"  # the sources are JPEGs
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    inverted = ", stored inverted as MONOCHROME1" if source.monochrome1 else ""
    ds.DerivationDescription = (
        f"Converted from Kermany et al. 2018 (CC BY 4.0, doi:10.17632/rscbjbr9sj.2) "
        f"test/{source.relative}, a 224x224 JPEG resize of the original radiograph; 8-bit "
        f"values scaled by 4095/255 to 12 bits{inverted}. Imager Pixel Spacing is assumed.")
    ds.ImageComments = f"{NOT_CLINICAL}. Source: test/{source.relative}; label: {source.label}."
    # Image pixel and DX image attributes
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if source.monochrome1 else "MONOCHROME2"
    ds.Rows, ds.Columns = (int(n) for n in stored.shape)
    ds.BitsAllocated = 16
    ds.BitsStored = STORED_BITS
    ds.HighBit = STORED_BITS - 1
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LOG"
    # Bone (less X-ray reaching the detector) is bright in MONOCHROME2, i.e. high values.
    ds.PixelIntensityRelationshipSign = 1 if source.monochrome1 else -1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "INVERSE" if source.monochrome1 else "IDENTITY"
    ds.WindowCenter = f"{center:.1f}"
    ds.WindowWidth = f"{width:.1f}"
    ds.WindowCenterWidthExplanation = "1st-99th percentile"
    ds.ImagerPixelSpacing = [ASSUMED_PIXEL_SPACING_MM, ASSUMED_PIXEL_SPACING_MM]
    ds.DetectorType = ""
    ds.PixelData = stored.astype("<u2").tobytes()
    return ds


def build(source_dir: Path, out_dir: Path) -> list[Path]:
    missing = [s.relative for s in SOURCES if not (source_dir / s.relative).is_file()]
    if missing:
        raise SystemExit(f"source images not found in {source_dir}: {', '.join(missing)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    numbers: dict[int, int] = {}
    for source in SOURCES:
        numbers[source.series] = numbers.get(source.series, 0) + 1
        number = numbers[source.series]
        ds = make_instance(source, number, load_grey(source_dir / source.relative))
        target = out_dir / f"S{source.series:02d}_I{number:02d}.dcm"
        ds.save_as(target, enforce_file_format=True)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="the kermany224 test folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="where to write the DICOM files (default: %(default)s)")
    args = parser.parse_args(argv)
    written = build(args.source, args.out)
    total = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} files ({total / 1024:.0f} KiB) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
