"""HTTP entry points (Faust web views): decode, call the domain or the log, answer JSON."""
