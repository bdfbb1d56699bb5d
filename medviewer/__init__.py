"""MedViewer: an offline desktop viewer for DICOM and X-ray studies with AI reads."""

__version__ = "0.1.0"
APP_NAME = "MedViewer"
