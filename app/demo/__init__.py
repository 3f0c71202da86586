"""The demo: 2013 New York flights predicted, tagged on arrival, trained on and served."""
