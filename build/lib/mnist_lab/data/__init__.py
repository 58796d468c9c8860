"""Reading MNIST (and Kaggle CSVs) into tensors, and serving them to Lightning in index batches."""
