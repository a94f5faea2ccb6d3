"""Model: encoders and their registry, the U-Net models, the loss, input conversion, pretrained
weights, and how a model sees a scan (resize view or sliding window).
"""
