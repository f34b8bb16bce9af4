"""Work shared by the web views and the CLI; each function takes a Session and plain values.

Services flush but never commit: the request handler or command owns the transaction.
"""
