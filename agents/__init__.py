"""Faust agents: thin loops that hand batches of records to the domain."""
