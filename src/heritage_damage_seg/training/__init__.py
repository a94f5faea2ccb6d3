"""Training: batches resident on the device, augmentation on the device, and the training loop with its checkpoints."""
