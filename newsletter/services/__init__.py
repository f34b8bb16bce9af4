"""Work shared by the web views and the CLI; each function takes a Session and plain values.

Services flush but never commit: the request handler or command owns the transaction. Three
own their transactions instead, each saying why: sending (``confirmations.Outbox`` and
``digest_sending``, one short transaction per step so none is held across SMTP I/O) and
``csv_import`` (one per batch, so a stopped import keeps what it wrote).
"""
