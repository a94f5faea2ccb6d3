"""Inference: applying a trained model to new scans and what a conservator opens afterwards
(damage viewer, confidence maps, damage outlines)."""
