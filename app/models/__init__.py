"""Models as views: dataset snapshots, training, validation by replay, retraining, serving."""
