"""Inference: damage maps of new scans at native resolution, and export of a trained model."""
