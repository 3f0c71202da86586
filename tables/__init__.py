"""The RocksDB-backed tables that hold modelview's views."""
