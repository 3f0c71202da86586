"""The learning, behind a small interface: everything around it is tested with the baseline."""
