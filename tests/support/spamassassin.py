"""Debian's SpamAssassin run on a delivered message with its local rules only (no network)."""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from email.policy import default
from pathlib import Path

import pytest

__all__ = ["SpamAssassin", "SpamReport"]

# "X-Spam-Status: No, score=0.7 required=5.0 tests=HTML_FONT_LOW_CONTRAST,
#  HTML_MESSAGE autolearn=no ...": the list of rules is folded after any comma.
STATUS = re.compile(r"score=(?P<score>-?[\d.]+) .*?tests=(?P<tests>(?:\w+,\s*)*\w*)", re.DOTALL)


@dataclass(frozen=True)
class SpamReport:
    score: float
    tests: list[str]


@dataclass(frozen=True)
class SpamAssassin:
    program: str
    folder: Path

    @classmethod
    def find(cls, folder: Path) -> SpamAssassin:
        """The installed ``spamassassin``; the test command installs it where it is missing, so
        a test that needs it fails, never passes unseen, without it."""
        program = shutil.which("spamassassin")
        if program is None:
            pytest.fail(
                "spamassassin is not installed: scripts/test.sh installs it (apt-get install "
                "spamassassin)"
            )
        return cls(program, folder)

    def check(self, message: bytes) -> SpamReport:
        """Score ``message`` as a receiving server would, with the local rules only."""
        prefs = self.folder / "user_prefs"
        prefs.touch()
        # Its own home and an empty preferences file: nothing of the user's account counts,
        # and nothing is written there.
        environment = {**os.environ, "HOME": str(self.folder)}
        result = subprocess.run(
            [self.program, "-t", "-L", "-p", str(prefs)],
            input=message,
            capture_output=True,
            env=environment,
            timeout=120,
            check=True,
        )
        checked = email.message_from_bytes(result.stdout, policy=default)
        status = str(checked["X-Spam-Status"])
        match = STATUS.search(status)
        assert match, status
        tests = [name.strip() for name in match.group("tests").split(",") if name.strip()]
        return SpamReport(float(match.group("score")), tests)
