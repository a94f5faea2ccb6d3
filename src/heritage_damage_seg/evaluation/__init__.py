"""Evaluation: scoring a trained model on the test split, bootstrap intervals over artworks and
seeds, the model comparison, and leave-one-out summaries.
"""
