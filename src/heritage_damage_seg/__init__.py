"""Semantic segmentation of damage on heritage scans (ARTeFACT-style 16-class masks)."""

__version__ = "0.1.0"
