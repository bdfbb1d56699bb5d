"""Hospital connectivity: PACS (DIMSE) and DICOMweb servers, and a local retrieve cache.

A layer beside ``inference/`` and ``labels/``, above ``dicom/``; Qt-free. Every network
operation is a job generator (``medviewer.jobs``) in :mod:`medviewer.pacs.operations`; the
protocol modules (:mod:`~medviewer.pacs.dimse`, :mod:`~medviewer.pacs.dicomweb`) are imported
only when a job runs, so pynetdicom and requests load late.
"""
