"""The pure domain: events, their codec, and the folds that turn them into views. No I/O here."""
