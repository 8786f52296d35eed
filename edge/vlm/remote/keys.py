"""CURVE key files for the remote VLM: created safely, loaded strictly, and the server's authorised robots reloaded
when their folder changes.

Layout (pyzmq's certificate format, read by zmq.auth.load_certificate): DIR/NAME.key holds the public key (share
it), DIR/NAME.key_secret the public and secret keys (keep it on that machine, mode 0600). Sources: docs/remote.md §3.
- write_keypair never overwrites: an existing pair is refused (overwriting a server's key locks out every robot that
  holds its public key). rotate=True moves the old pair to NAME.previous.* first, so the old key keeps working where
  it is still used (a server can serve both, `serve --previous-bind`; a clients folder authorises every *.key in it).
- The secret file is created with mode 0600 (os.open O_EXCL), never exists with wider permissions, and a secret
  readable by group or others is refused at load.
- ClientKeys is the ZAP credentials provider: the authorised public keys of a folder, re-read when the folder's
  listing changes; refused keys are logged at warning level, rate-limited per key.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
import zmq.utils.z85

from edge.common.ratelimit import LogLimiter

log = logging.getLogger("edge.vlm.remote")
PREVIOUS = "previous"  # NAME.previous.key / NAME.previous.key_secret: the pair a rotation replaced


class KeyFileError(ValueError):
    """A key file that is missing, malformed, or unsafe (a secret readable by others)."""


def _cert_text(public: bytes, secret: bytes | None) -> str:
    lines = ["#   ZeroMQ CURVE certificate written by edge.vlm.remote keys", "metadata", "curve"]
    lines.append(f'    public-key = "{public.decode("ascii")}"')
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode("ascii")}"')
    return "\n".join(lines) + "\n"


def _write_new(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # O_EXCL: never overwrite
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it; the file never had wider permissions
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def key_paths(directory: str | os.PathLike, name: str) -> tuple[Path, Path]:
    d = Path(directory)
    return d / f"{name}.key", d / f"{name}.key_secret"


def write_keypair(directory: str | os.PathLike, name: str, *, rotate: bool = False) -> tuple[Path, Path]:
    """Write DIR/NAME.key (0644) and DIR/NAME.key_secret (0600); returns both paths.
    Refuses (FileExistsError) if either exists, unless rotate: then the old pair becomes NAME.previous.key /
    NAME.previous.key_secret (refused if a previous pair is still there: finish that rotation first)."""
    if not name or "/" in name or name.startswith(".") or name.endswith(f".{PREVIOUS}"):
        raise ValueError(f"key name {name!r}: use a plain file name (not ending in .{PREVIOUS})")
    d = Path(directory)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    public, secret = key_paths(d, name)
    existing = [p for p in (public, secret) if p.exists()]
    if existing and not rotate:
        raise FileExistsError(
            f"{existing[0]} exists: refusing to overwrite it (every peer holding the old public key would be locked "
            "out). Use --rotate to keep the old pair as NAME.previous.* while peers move to the new one."
        )
    if existing:
        old_public, old_secret = key_paths(d, f"{name}.{PREVIOUS}")
        if old_public.exists() or old_secret.exists():
            raise FileExistsError(
                f"{old_public} exists: an earlier rotation is not finished; remove the previous pair once no peer "
                "uses it, then rotate again"
            )
        for cur, old in ((public, old_public), (secret, old_secret)):
            if cur.exists():
                os.rename(cur, old)
    pub, sec = zmq.curve_keypair()
    _write_new(secret, _cert_text(pub, sec), 0o600)
    _write_new(public, _cert_text(pub, None), 0o644)
    return public, secret


def load_secret(path: str | os.PathLike) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys of a NAME.key_secret file; KeyFileError if it is missing, malformed, its keys do not
    match, or it is readable by group or others."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise KeyFileError(f"{p}: cannot read the secret key ({e.strerror})") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{p}: secret key is accessible by group/others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run `chmod 600 {p}` (and replace the key if others may have read it)"
        )
    try:
        public, secret = zmq.auth.load_certificate(p)
    except (OSError, ValueError) as e:
        raise KeyFileError(f"{p}: not a key file ({e})") from None
    if secret is None:
        raise KeyFileError(f"{p}: holds no secret key (a public .key file?)")
    if zmq.curve_public(secret) != public:
        raise KeyFileError(f"{p}: its public and secret keys do not belong together")
    return public, secret


def load_public(path: str | os.PathLike) -> bytes:
    p = Path(path)
    try:
        public, _ = zmq.auth.load_certificate(p)
    except (OSError, ValueError) as e:
        raise KeyFileError(f"{p}: not a public key file ({e})") from None
    if len(public) != 40:
        raise KeyFileError(f"{p}: public key is {len(public)} characters, a z85 CURVE key has 40")
    try:
        zmq.utils.z85.decode(public)
    except Exception:
        raise KeyFileError(f"{p}: public key is not valid z85") from None
    return public


@dataclass(frozen=True)
class KeySet:
    names: dict[bytes, str]  # z85 public key → robot name (file name without .key)
    listing: tuple  # (name, mtime_ns, size, inode) of each *.key file when read


class ClientKeys:
    """The robots a server accepts: every NAME.key in `folder` (or any key when allow_any). Thread-safe: the ZAP
    thread calls `callback`, the server loop calls `refresh`, each swap is one assignment.

    At start (`ClientKeys(folder)`) a missing folder or an unreadable key file is an error (KeyFileError). Later
    refreshes skip a broken file with a warning and keep serving the others."""

    def __init__(self, folder: str | os.PathLike | None, *, allow_any: bool = False, warn_every_s: float = 10.0):
        if folder is None and not allow_any:
            raise ValueError("ClientKeys needs a folder, or allow_any=True")
        self.folder = None if folder is None else Path(folder)
        self.allow_any = allow_any
        self.limiter = LogLimiter(warn_every_s)
        self.refused = 0
        self.address = "?"  # peer address of the handshake being checked (set by the authenticator)
        self._lock = threading.Lock()
        self.keys = KeySet({}, ())
        if self.folder is not None:
            self.keys = self._read(strict=True)

    def _listing(self) -> tuple:
        assert self.folder is not None
        try:
            entries = sorted(os.scandir(self.folder), key=lambda e: e.name)
        except FileNotFoundError:
            raise KeyFileError(f"{self.folder}: clients folder does not exist") from None
        except NotADirectoryError:
            raise KeyFileError(f"{self.folder}: clients folder is not a directory") from None
        out = []
        for e in entries:
            if e.name.endswith(".key") and e.is_file():
                st = e.stat()
                out.append((e.name, st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    def _read(self, strict: bool) -> KeySet:
        assert self.folder is not None
        listing = self._listing()
        names: dict[bytes, str] = {}
        for name, *_ in listing:
            try:
                names[load_public(self.folder / name)] = name[: -len(".key")]
            except KeyFileError as e:
                if strict:
                    raise
                self.limiter.warning(log, ("bad key", name), "%s (skipped; other robots still served)", e)
        return KeySet(names, listing)

    def refresh(self) -> bool:
        """Re-read the folder if its listing changed; True if the set of keys changed. Never raises: a vanished
        folder keeps the last good set (with a warning)."""
        if self.folder is None:
            return False
        try:
            if self._listing() == self.keys.listing:
                return False
            new = self._read(strict=False)
        except (KeyFileError, OSError) as e:
            self.limiter.warning(log, "folder", "%s; keeping the %d keys read before", e, len(self.keys.names))
            return False
        old = self.keys
        with self._lock:
            self.keys = new
        added = sorted(set(new.names.values()) - set(old.names.values()))
        removed = sorted(set(old.names.values()) - set(new.names.values()))
        if added or removed or new.names.keys() != old.names.keys():
            log.info(
                "robot keys reloaded from %s: %d authorised (added %s, removed %s)",
                self.folder,
                len(new.names),
                added or "none",
                removed or "none",
            )
            return True
        return False

    def name(self, key: bytes) -> str | None:
        """The robot name of an authorised z85 key, or None."""
        found = self.keys.names.get(key)
        if found is None and self.allow_any:
            return "unlisted-" + key.decode("ascii", "replace")[:8]
        return found

    def callback(self, domain: str, key: bytes) -> bool:
        """pyzmq ZAP credentials provider: called per CURVE handshake with the client's z85 public key."""
        if key in self.keys.names:
            return True
        if self.allow_any:
            self.limiter.warning(
                log,
                ("any", key),
                "accepting UNLISTED robot key %s from %s (--allow-any-key)",
                key.decode("ascii", "replace"),
                self.address,
            )
            return True
        self.refused += 1
        self.limiter.warning(
            log,
            ("refused", key),
            "refused robot key %s from %s: not in %s",
            key.decode("ascii", "replace"),
            self.address,
            self.folder,
        )
        return False
