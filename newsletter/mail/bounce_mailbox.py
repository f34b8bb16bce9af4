"""The bounce mailbox: where reports arrive, over IMAP or in a maildir.

``NEWSLETTER_BOUNCE_MAILBOX`` is ``imaps://user:pass@host[:port]/INBOX``, ``imap://…`` or
``maildir:///path``. A message is read without changing it; once handled it is moved to the
``processed`` folder (``?processed=NAME`` chooses another), with IMAP MOVE or a maildir
rename, both atomic. Nothing here ever deletes a message: one that cannot be read stays
where it is for a person to look at.
"""

from __future__ import annotations

import imaplib
import os
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "ImapMailbox",
    "Mailbox",
    "MailboxError",
    "MailboxURL",
    "MaildirMailbox",
    "open_mailbox",
    "parse_mailbox_url",
]

IMAP_PORTS = {"imap": 143, "imaps": 993}
DEFAULT_PROCESSED = "processed"
DEFAULT_TIMEOUT = 30.0


class MailboxError(OSError):
    """The mailbox cannot be reached, logged into or read."""


@dataclass(frozen=True)
class MailboxURL:
    scheme: str
    host: str = ""
    port: int = 0
    username: str = ""
    password: str = ""
    folder: str = "INBOX"
    processed: str = DEFAULT_PROCESSED
    path: Path | None = None

    @property
    def shown(self) -> str:
        """The mailbox as messages name it, without the password."""
        if self.path is not None:
            return f"maildir://{self.path}"
        return f"{self.scheme}://{self.username}@{self.host}:{self.port}/{self.folder}"


def parse_mailbox_url(url: str) -> MailboxURL:
    """Read a bounce mailbox URL; raise ValueError naming what is wrong."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    processed = parse_qs(parts.query).get("processed", [DEFAULT_PROCESSED])[0]
    if scheme == "maildir":
        path = unquote(parts.netloc + parts.path)
        if not path.startswith("/"):
            raise ValueError("a maildir needs an absolute path: maildir:///var/mail/bounces")
        return MailboxURL(scheme, path=Path(path), processed=processed)
    if scheme not in IMAP_PORTS:
        raise ValueError("expected imaps://user:password@host/INBOX, imap://… or maildir:///path")
    if not parts.hostname:
        raise ValueError(f"no host; use {scheme}://user:password@host/INBOX")
    if not parts.username or parts.password is None:
        raise ValueError(f"no user or password; use {scheme}://user:password@host/INBOX")
    try:
        port = parts.port or IMAP_PORTS[scheme]
    except ValueError:
        raise ValueError("the port is not a number") from None
    return MailboxURL(
        scheme,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username),
        password=unquote(parts.password),
        folder=unquote(parts.path.lstrip("/")) or "INBOX",
        processed=processed,
    )


class Mailbox(Protocol):
    def messages(self) -> Iterator[tuple[str, bytes]]:
        """Each message waiting, as (a name for it, its bytes); reading changes nothing."""

    def move_to_processed(self, name: str) -> None:
        """Move a handled message to the processed folder (gone already: nothing to do)."""

    def close(self) -> None:
        """Log out; safe to call twice."""


class MaildirMailbox:
    """A maildir's ``new`` and ``cur`` messages; handled ones go to its ``.processed`` folder
    (Maildir++), which IMAP servers show as a folder beside the inbox."""

    def __init__(self, path: Path, processed: str = DEFAULT_PROCESSED) -> None:
        self.path = path
        self.processed = path / f".{processed}"

    def messages(self) -> Iterator[tuple[str, bytes]]:
        for sub in ("new", "cur"):
            try:
                names = sorted(os.listdir(self.path / sub))
            except OSError as error:
                raise MailboxError(f"cannot read maildir {self.path}: {error.strerror}") from None
            for name in names:
                if name.startswith("."):
                    continue
                try:
                    raw = (self.path / sub / name).read_bytes()
                except FileNotFoundError:
                    continue  # another run moved it meanwhile
                except IsADirectoryError:
                    continue  # not a message: a maildir's new/ and cur/ hold files only
                except OSError as error:
                    where = self.path / sub / name
                    raise MailboxError(f"cannot read {where}: {error.strerror}") from None
                yield f"{sub}/{name}", raw

    def move_to_processed(self, name: str) -> None:
        for sub in ("tmp", "new", "cur"):
            (self.processed / sub).mkdir(parents=True, exist_ok=True)
        base = name.partition("/")[2]
        # A message in cur/ carries its flags after ":2,"; mark it seen.
        target = base if ":2," in base else f"{base}:2,S"
        try:
            # A rename is atomic: of two runs moving the same message, one finds it gone.
            os.rename(self.path / name, self.processed / "cur" / target)
        except FileNotFoundError:
            return

    def close(self) -> None:
        return None


class ImapMailbox:
    """One folder over IMAP (TLS with ``imaps://``); handled messages are moved by UID."""

    def __init__(self, url: MailboxURL, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url
        try:
            if url.scheme == "imaps":
                context = ssl.create_default_context()
                self.imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    url.host, url.port, ssl_context=context, timeout=timeout
                )
            else:
                self.imap = imaplib.IMAP4(url.host, url.port, timeout=timeout)
        except (OSError, imaplib.IMAP4.error) as error:
            raise MailboxError(f"cannot connect to {url.shown}: {error}") from None
        try:
            self.imap.login(url.username, url.password)
            # Servers announce more after login (MOVE among them) than in their greeting.
            _, announced = self.imap.capability()
            self.capabilities = set(
                b" ".join(item for item in announced if isinstance(item, bytes))
                .decode()
                .upper()
                .split()
            )
            status, _ = self.imap.select(_quoted(url.folder))
        except (OSError, imaplib.IMAP4.error) as error:
            self.close()
            raise MailboxError(f"cannot log in to {url.shown}: {_text(error)}") from None
        if status != "OK":
            self.close()
            raise MailboxError(f"{url.shown}: no folder {url.folder!r}")
        self._processed_ready = False

    def messages(self) -> Iterator[tuple[str, bytes]]:
        status, data = self._call("UID SEARCH", lambda: self.imap.uid("SEARCH", "UNDELETED"))
        found = data[0] if status == "OK" and data and isinstance(data[0], bytes) else b""
        for uid in found.decode("ascii").split():
            status, parts = self._call("UID FETCH", partial(self._fetch, uid))
            raw = next(
                (part[1] for part in parts if isinstance(part, tuple) and len(part) > 1), None
            )
            if status == "OK" and isinstance(raw, bytes):
                yield uid, raw

    def _fetch(self, uid: str) -> Any:
        # PEEK: reading a message must not even mark it seen.
        return self.imap.uid("FETCH", uid, "(BODY.PEEK[])")

    def move_to_processed(self, name: str) -> None:
        folder = _quoted(self.url.processed)
        if not self._processed_ready:
            # CREATE fails when the folder exists: that is the usual case, not an error.
            self._call("CREATE", lambda: self.imap.create(folder))
            self._processed_ready = True
        if "MOVE" in self.capabilities:
            status, data = self._call("UID MOVE", lambda: self.imap.uid("MOVE", name, folder))
        else:
            status, data = self._call("UID COPY", lambda: self.imap.uid("COPY", name, folder))
            if status == "OK":
                flags = r"(\Deleted)"
                self._call("UID STORE", lambda: self.imap.uid("STORE", name, "+FLAGS", flags))
                # Only this message goes: a plain EXPUNGE would also take messages a person
                # marked deleted. Without UIDPLUS the copy left behind stays marked, and is
                # not read again (the search skips deleted messages).
                if "UIDPLUS" in self.capabilities:
                    self._call("UID EXPUNGE", lambda: self.imap.uid("EXPUNGE", name))
        if status != "OK":
            raise MailboxError(f"cannot move message {name} to {self.url.processed}: {data!r}")

    def _call(self, what: str, call: Callable[[], Any]) -> tuple[str, list[Any]]:
        try:
            status, data = call()
        except (OSError, imaplib.IMAP4.error) as error:
            raise MailboxError(f"{self.url.shown}: {what} failed: {_text(error)}") from None
        return str(status), list(data or [])

    def close(self) -> None:
        try:
            self.imap.logout()
        except (OSError, imaplib.IMAP4.error):
            pass  # already gone


def _quoted(folder: str) -> str:
    """A folder name as an IMAP quoted string."""
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(error: BaseException) -> str:
    text = str(error)
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return text


def open_mailbox(url: str, timeout: float = DEFAULT_TIMEOUT) -> Mailbox:
    """Open the mailbox ``url`` names; raise :class:`MailboxError` when it cannot be."""
    parsed = parse_mailbox_url(url)
    if parsed.path is not None:
        if not parsed.path.is_dir():
            raise MailboxError(f"no maildir at {parsed.path}")
        return MaildirMailbox(parsed.path, parsed.processed)
    return ImapMailbox(parsed, timeout)
