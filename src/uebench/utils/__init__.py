"""Small shared helpers (atomic I/O, environment records, progress bars)."""
