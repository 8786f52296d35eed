"""Key files for the remote VLM: never overwritten, 0600 secrets from the moment they exist (whatever the umask),
rotation keeping the previous pair, unsafe or mismatched secrets refused, the clients folder re-read on change,
refused keys warned at most once per period; the rate limiter itself."""

from __future__ import annotations

import logging
import os
import stat
import threading

import pytest
import zmq

from edge.common.ratelimit import LogLimiter
from edge.vlm.remote.keys import ClientKeys, KeyFileError, load_public, load_secret, write_keypair


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_secret_is_0600_from_creation_whatever_the_umask(tmp_path, monkeypatch):
    seen = []
    real_write = os.write

    def watching_write(fd, data):  # the mode of the file while its secret is being written
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", watching_write)
    old = os.umask(0)
    try:
        public, secret = write_keypair(tmp_path / "k", "robot")
    finally:
        os.umask(old)
    assert seen[0] == 0o600 and mode(secret) == 0o600 and mode(public) == 0o644
    assert mode(tmp_path / "k") == 0o700
    pub, sec = load_secret(secret)
    assert load_public(public) == pub and zmq.curve_public(sec) == pub


def test_never_overwrites_and_rotation_keeps_the_previous_pair(tmp_path):
    public, secret = write_keypair(tmp_path, "server")
    before = public.read_bytes(), secret.read_bytes()
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_keypair(tmp_path, "server")
    assert (public.read_bytes(), secret.read_bytes()) == before
    secret.unlink()  # half a pair is still refused: the public key may be on every robot
    with pytest.raises(FileExistsError):
        write_keypair(tmp_path, "server")
    secret.write_bytes(before[1])
    os.chmod(secret, 0o600)
    write_keypair(tmp_path, "server", rotate=True)
    assert (tmp_path / "server.previous.key").read_bytes() == before[0]
    assert (tmp_path / "server.previous.key_secret").read_bytes() == before[1] and public.read_bytes() != before[0]
    with pytest.raises(FileExistsError, match="not finished"):
        write_keypair(tmp_path, "server", rotate=True)
    with pytest.raises(ValueError):
        write_keypair(tmp_path, "a.previous")


@pytest.mark.parametrize("perm", [0o640, 0o604, 0o660, 0o602])
def test_secret_readable_by_others_is_refused(tmp_path, perm):
    _, secret = write_keypair(tmp_path, "robot")
    os.chmod(secret, perm)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_secret(secret)


def test_broken_or_mismatched_key_files_are_refused(tmp_path):
    public, secret = write_keypair(tmp_path, "robot")
    with pytest.raises(KeyFileError, match="no secret key"):
        os.chmod(public, 0o600)
        load_secret(public)
    other_pub, _ = zmq.curve_keypair()
    text = secret.read_text().replace(load_public(public).decode(), other_pub.decode())
    secret.write_text(text)
    with pytest.raises(KeyFileError, match="do not belong together"):
        load_secret(secret)
    (tmp_path / "bad.key").write_text('curve\n    public-key = "short"\n')
    with pytest.raises(KeyFileError, match="40"):
        load_public(tmp_path / "bad.key")
    with pytest.raises(KeyFileError, match="cannot read"):
        load_secret(tmp_path / "missing.key_secret")


def test_client_keys_reload_on_change_and_keep_serving_past_a_broken_file(tmp_path, caplog):
    folder = tmp_path / "clients"
    with pytest.raises(KeyFileError, match="does not exist"):
        ClientKeys(folder)
    folder.mkdir()
    a_pub, _ = write_keypair(tmp_path / "robots", "a")
    b_pub, _ = write_keypair(tmp_path / "robots", "b")
    os.link(a_pub, folder / "a.key")
    keys = ClientKeys(folder)
    a, b = load_public(a_pub), load_public(b_pub)
    assert keys.callback("edge-vln", a) and not keys.callback("edge-vln", b) and keys.name(a) == "a"
    assert not keys.refresh()  # nothing changed
    os.link(b_pub, folder / "b.key")
    (folder / "broken.key").write_text("not a key\n")
    with caplog.at_level(logging.INFO, logger="edge.vlm.remote"):
        assert keys.refresh()
    assert keys.callback("edge-vln", b) and keys.name(b) == "b"
    assert "broken.key" in caplog.text and "added ['b']" in caplog.text  # skipped with a warning, others served
    os.remove(folder / "a.key")
    assert keys.refresh() and not keys.callback("edge-vln", a) and keys.name(a) is None
    with pytest.raises(KeyFileError, match="broken.key"):  # at start a broken file is an error
        ClientKeys(folder)


def test_refused_keys_are_warned_once_per_period(tmp_path, caplog):
    (tmp_path / "clients").mkdir()
    keys = ClientKeys(tmp_path / "clients", warn_every_s=3600)
    intruder, other = zmq.curve_keypair()[0], zmq.curve_keypair()[0]
    with caplog.at_level(logging.DEBUG, logger="edge.vlm.remote"):
        for _ in range(5):
            assert not keys.callback("edge-vln", intruder)
        assert not keys.callback("edge-vln", other)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and keys.refused == 6 and keys.limiter.suppressed == 4
    assert intruder.decode() in warnings[0].getMessage()


def test_allow_any_accepts_every_key_with_a_warning(caplog):
    keys = ClientKeys(None, allow_any=True)
    k = zmq.curve_keypair()[0]
    with caplog.at_level(logging.WARNING, logger="edge.vlm.remote"):
        assert keys.callback("edge-vln", k) and keys.name(k).startswith("unlisted-")
    assert "UNLISTED" in caplog.text
    with pytest.raises(ValueError):
        ClientKeys(None)


def test_log_limiter_counts_what_it_suppressed(caplog, monkeypatch):
    import edge.common.ratelimit as rl

    now = [100.0]
    monkeypatch.setattr(rl.time, "monotonic", lambda: now[0])
    lim = LogLimiter(period_s=10, max_keys=2)
    log = logging.getLogger("test.limiter")
    with caplog.at_level(logging.WARNING, logger="test.limiter"):
        assert lim.warning(log, "k", "fault %s", 1)
        assert not lim.warning(log, "k", "fault %s", 2) and not lim.warning(log, "k", "fault %s", 3)
        now[0] += 10
        assert lim.warning(log, "k", "fault %s", 4)
        assert lim.warning(log, "x", "other") and lim.warning(log, "y", "other")  # max_keys: "k" forgotten
        assert lim.warning(log, "k", "fault %s", 5)
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs[0] == "fault 1" and msgs[1] == "fault 4 (2 more like it in the last 10 s)" and msgs[-1] == "fault 5"
    assert len(lim._last) <= 2


def test_log_limiter_is_thread_safe():
    lim = LogLimiter(period_s=3600)
    log = logging.getLogger("test.limiter.threads")

    def hammer():
        for _ in range(500):
            lim.warning(log, "same", "x")

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lim.logged == 1 and lim.suppressed == 1999
