"""Running the installed ``newsletter`` console script as a person would, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["CONSOLE_SCRIPT", "newsletter"]

CONSOLE_SCRIPT = Path(sys.executable).parent / "newsletter"
# Root reads and writes whatever the permission bits say; without these two capabilities it
# meets a read-only folder or an unreadable file the way everyone else does.
AS_EVERYONE = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]


def newsletter(
    *args: str,
    instance: Path,
    settings: dict[str, str] | None = None,
    obey_permissions: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``newsletter ARGS`` in ``instance``'s parent folder with only ``NEWSLETTER_*`` settings.

    ``obey_permissions`` makes file permissions apply even when the tests run as root.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NEWSLETTER_INSTANCE_PATH": str(instance),
        **(settings or {}),
    }
    prefix = AS_EVERYONE if obey_permissions and os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, str(CONSOLE_SCRIPT), *args],
        env=env,
        cwd=instance.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
