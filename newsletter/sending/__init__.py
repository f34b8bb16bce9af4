"""Sending mail to many people: exactly once, resumable, concurrent, throttled."""
