"""Tests of the Qt-free application layer (medviewer.app)."""
