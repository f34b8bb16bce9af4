"""A throw-away IMAP server (Debian's ``dovecot-imapd``) for the test session, on 127.0.0.1
and a free port, with its own configuration, users and maildirs in a temporary folder.

Dovecot runs as an ordinary user: the ``dovecot`` system user when the tests run as root (as
in CI), the current user otherwise. Plain IMAP with a password, no TLS: the test reaches it
over the loopback only.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import running_process
from tests.support.smtp import free_port

__all__ = ["ImapServer", "running_dovecot"]

DOVECOT = "/usr/sbin/dovecot"
# The system user dovecot-core creates; it owns nothing else the tests need.
RUN_AS_WHEN_ROOT = "dovecot"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
"""


@dataclass
class ImapServer:
    host: str
    port: int
    maildirs: Path
    # Accounts made before Dovecot starts: it may not notice a passwd-file changed twice
    # within one second, so none is added while it runs.
    accounts: list[tuple[str, str]]

    def new_account(self) -> tuple[str, str]:
        """A user and password no test has used yet, with an empty mailbox."""
        return self.accounts.pop()

    def url(self, user: str, password: str, folder: str = "INBOX") -> str:
        return f"imap://{user}:{password}@{self.host}:{self.port}/{folder}"

    def connect(self, user: str, password: str) -> imaplib.IMAP4:
        imap = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            imap.login(user, password)
        except imaplib.IMAP4.error:
            imap.shutdown()
            raise
        return imap


def _answers(port: int) -> bool:
    try:
        with imaplib.IMAP4("127.0.0.1", port, timeout=2) as imap:
            return "IMAP4REV1" in imap.capabilities
    except OSError:
        return False


@contextmanager
def running_dovecot(accounts: int = 40, startup_timeout: float = 30) -> Iterator[ImapServer]:
    """Start Dovecot with this many accounts (see ``ImapServer.new_account``); yield where it
    listens."""
    if not os.path.exists(DOVECOT):
        raise RuntimeError("dovecot is not installed: apt-get install dovecot-imapd")
    root = Path(tempfile.mkdtemp(prefix="newsletter-imap-"))
    try:
        account = pwd.getpwnam(RUN_AS_WHEN_ROOT) if os.geteuid() == 0 else pwd.getpwuid(os.getuid())
        group = _group_name(account.pw_gid)
        port = free_port()
        for sub in ("run", "state", "mail", "home"):
            (root / sub).mkdir()
        made = [(f"bounces{n}", secrets.token_hex(12)) for n in range(accounts)]
        (root / "passwd").write_text(
            "".join(f"{name}:{{PLAIN}}{password}::::::\n" for name, password in made)
        )
        config = root / "dovecot.conf"
        config.write_text(
            CONFIG.format(
                root=root,
                user=account.pw_name,
                group=group,
                uid=account.pw_uid,
                gid=account.pw_gid,
                port=port,
            )
        )
        if os.geteuid() == 0:
            for path in [root, *root.rglob("*")]:
                os.chown(path, account.pw_uid, account.pw_gid)
        command = [DOVECOT, "-F", "-c", str(config)]
        if os.geteuid() == 0:
            command = ["runuser", "-u", account.pw_name, "--", *command]
        with running_process(
            command,
            root / "console.log",
            lambda: _answers(port),
            name="dovecot",
            startup_timeout=startup_timeout,
        ):
            try:
                yield ImapServer("127.0.0.1", port, root / "mail", made)
            finally:
                # runuser passes the stop on to Dovecot; this makes sure its children go too.
                subprocess.run(
                    [*command[: command.index(DOVECOT) + 1], "-c", str(config), "stop"],
                    check=False,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _group_name(gid: int) -> str:
    return grp.getgrgid(gid).gr_name
