"""De-identification of DICOM objects (PS3.15 Annex E, Basic Application Level Confidentiality
Profile with options).

``table_e1_1`` is the standard's Table E.1-1 as data; ``profile`` turns it into one action
per attribute for the chosen options; ``keys`` makes pseudonyms and new UIDs from the user's
project key; ``dataset`` applies the actions to one pydicom Dataset at every depth;
``pixels`` finds files that may show identity in their pixels and masks rectangles; ``job``
de-identifies files, folders and DICOMDIRs into a new folder with a DICOMDIR.
"""
