"""release_sport_mode's return-code handling, with typed fake RPC clients (the loopback DDS version of this test,
against a fake motion_switcher service, is in tests/integration/test_go2_dds_loopback.py)."""

from __future__ import annotations

import pytest

from drivers.unitree.go2 import SportModeError, release_sport_mode


# --------------------------------------------------------------------------- release_sport_mode with typed fakes
class FakeSwitcher:
    """Stands in for MotionSwitcherClient: same method names and return shapes."""

    def __init__(self, mode: str = "normal", check_codes=(), release_code: int = 0, releases_needed: int = 1):
        self.mode, self.calls = mode, []
        self._check_codes, self._release_code, self._releases_left = list(check_codes), release_code, releases_needed

    def CheckMode(self):
        self.calls.append("CheckMode")
        code = self._check_codes.pop(0) if self._check_codes else 0
        return (code, None) if code else (0, {"name": self.mode, "form": "0"})

    def ReleaseMode(self):
        self.calls.append("ReleaseMode")
        if self._release_code:
            return self._release_code, None
        self._releases_left -= 1
        if self._releases_left <= 0:
            self.mode = ""
        return 0, None


class FakeSport:
    def __init__(self, code: int = 0):
        self.code, self.calls = code, 0

    def StandDown(self) -> int:
        self.calls += 1
        return self.code


def _release(sw, sp, **kw):
    return release_sport_mode(switcher=sw, sport=sp, sleep=lambda s: None, **kw)


def test_release_sport_mode_happy_path():
    sw, sp = FakeSwitcher(), FakeSport()
    assert _release(sw, sp) == 1
    assert sw.calls == ["CheckMode", "ReleaseMode", "CheckMode"] and sp.calls == 1


def test_release_sport_mode_already_released():
    sw, sp = FakeSwitcher(mode=""), FakeSport()
    assert _release(sw, sp) == 0
    assert sp.calls == 0


def test_release_sport_mode_checkmode_timeout_raises_with_code():
    # The SDK returns (3104, None) on RPC timeout; the SDK example then crashes indexing None.
    with pytest.raises(SportModeError, match="CheckMode code 3104") as e:
        _release(FakeSwitcher(check_codes=[3104]), FakeSport())
    assert e.value.code == 3104 and e.value.step == "CheckMode"


def test_release_sport_mode_standdown_error():
    with pytest.raises(SportModeError) as e:
        _release(FakeSwitcher(), FakeSport(code=3203))
    assert (e.value.code, e.value.step) == (3203, "StandDown")


def test_release_sport_mode_release_error():
    with pytest.raises(SportModeError) as e:
        _release(FakeSwitcher(release_code=3001), FakeSport())
    assert (e.value.code, e.value.step) == (3001, "ReleaseMode")


def test_release_sport_mode_bounded_attempts():
    sw = FakeSwitcher(releases_needed=10**6)
    with pytest.raises(SportModeError, match="still active after 3"):
        _release(sw, FakeSport(), max_attempts=3)
    assert sw.calls.count("ReleaseMode") == 3


def test_release_sport_mode_succeeds_on_last_attempt():
    sw = FakeSwitcher(releases_needed=3)
    assert _release(sw, FakeSport(), max_attempts=3) == 3
