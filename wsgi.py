"""WSGI entry point: ``gunicorn wsgi:app``."""

from newsletter import create_app

app = create_app()
