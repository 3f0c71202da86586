"""The views: the ingest step that owns the commit protocol, the table's changelog, and
reads of the views, on this worker or across the cluster."""
