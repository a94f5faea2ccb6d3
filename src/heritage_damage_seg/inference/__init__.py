"""Inference: damage maps of new scans at native resolution, what a conservator opens afterwards
(damage viewer, confidence maps, damage outlines), and export of a trained model."""
