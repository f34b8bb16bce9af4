"""``python -m newsletter`` is the ``newsletter`` command."""

from newsletter.cli.main import main

main()
