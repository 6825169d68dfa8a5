"""Job handles: futures, the trainer and job predictor backends, the model manager."""
