"""Email: building messages (data) apart from transports (I/O)."""
