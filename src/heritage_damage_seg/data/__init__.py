"""Data: the synthetic dataset, reading scans and masks (folders, parquet), the training cache, the
split and the class weights.
"""
