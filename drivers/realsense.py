"""Intel RealSense (D435 / D455) colour and optional aligned depth through pyrealsense2, live or from a `.db3`.

Playback of a recording is a constructor option (`playback=path`), so tests run the real pipeline code on files.
A background thread waits for frames and keeps only the newest (latest-only). Any loss (a RuntimeError from the
pipeline after a USB drop, no frame within `frame_timeout_s`, or the end of a recording played with loop=False)
closes the pipeline and reopens it with exponential backoff (0.1 s doubling to 2 s); nothing is raised into the
caller after open(). librealsense 2.59 records and plays back rosbag2 SQLite `.db3` files only.

Recording (`record=path.db3`) never overwrites: each start of the pipeline (open, and every reopen after a loss)
records to a file that does not exist yet — `path.db3`, then `path-1.db3`, `path-2.db3` … (`recordings` lists them).
A recording that lacks a requested stream is refused naming what was asked for and what the file holds (librealsense
itself says only "Couldn't resolve requests").
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable

import numpy as np

from drivers.camera import CameraError, Frame, Intrinsics

log = logging.getLogger(__name__)

POLL_S = 0.1  # wait_for_frames slice; also the close() latency
BACKOFF_S = (0.1, 2.0)  # first and largest pause before a reopen


def _rs():
    import pyrealsense2 as rs  # lazy: the SDK is an optional dependency

    return rs


def _intrinsics(profile) -> Intrinsics:
    i = profile.as_video_stream_profile().get_intrinsics()
    return Intrinsics(width=i.width, height=i.height, fx=i.fx, fy=i.fy, cx=i.ppx, cy=i.ppy)


def list_devices() -> list[dict[str, str]]:
    """Connected RealSense devices: name, serial, firmware and the USB type the link negotiated ("3.2", "2.1": USB 2
    caps resolution and frame rate). Raises ImportError without pyrealsense2."""
    rs = _rs()
    out = []
    for dev in rs.context().query_devices():

        def info(key) -> str:
            return str(dev.get_info(key)) if dev.supports(key) else "?"

        out.append(
            {
                "name": info(rs.camera_info.name),
                "serial": info(rs.camera_info.serial_number),
                "firmware": info(rs.camera_info.firmware_version),
                "usb": info(rs.camera_info.usb_type_descriptor),
            }
        )
    return out


def _check_db3(path: str) -> None:
    if not path.endswith(".db3"):
        raise CameraError(f"{path}: librealsense 2.59 reads and writes rosbag2 .db3 files only")


def next_free_path(path: str, start: int = 0) -> tuple[str, int]:
    """The first of path, path-1.db3, path-2.db3 … (from index `start`) that does not exist, and its index."""
    stem = path[: -len(".db3")]
    n = start
    while True:
        candidate = path if n == 0 else f"{stem}-{n}.db3"
        if not os.path.exists(candidate):
            return candidate, n
        n += 1


def recorded_streams(path: str) -> list[str]:
    """What a recording holds, one entry per stream profile: "Color 64x48 rgb8 @30fps"."""
    rs = _rs()
    ctx = rs.context()
    dev = ctx.load_device(path)
    try:
        out = []
        for sensor in dev.query_sensors():
            for p in sensor.get_stream_profiles():
                size = ""
                if p.is_video_stream_profile():
                    v = p.as_video_stream_profile()
                    size = f" {v.width()}x{v.height()}"
                out.append(f"{p.stream_name()}{size} {str(p.format()).split('.')[-1]} @{p.fps()}fps")
        return out
    finally:
        ctx.unload_device(path)


class RealSenseCamera:
    """Live device (by serial, or the first one found) or a `.db3` recording (`playback`).

    real_time=False plays a recording as fast as it is consumed, dropping nothing (deterministic tests).
    loop=True repeats a recording; loop=False treats its end as a lost device (reopened with backoff).
    record=path.db3 also records the live streams to that file (rs.config.enable_record_to_file).
    on_frame, if given, is called from the capture thread with every frame received (keep it short).
    """

    def __init__(
        self,
        serial: str | None = None,
        playback: str | None = None,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        depth: bool = False,
        align_depth: bool = True,
        real_time: bool = True,
        loop: bool = False,
        record: str | None = None,
        frame_timeout_s: float | None = None,
        on_frame: Callable[[Frame], None] | None = None,
    ):
        if serial and playback:
            raise ValueError("give a serial or a playback file, not both")
        if playback and record:
            raise ValueError("cannot record while playing back")
        self.serial, self.playback, self.record = serial, playback, record
        self.width, self.height, self.fps = width, height, fps
        self.depth, self.align_depth, self.real_time, self.loop = depth, align_depth, real_time, loop
        self.frame_timeout_s = frame_timeout_s or max(1.0, 10.0 / fps)
        self.on_frame = on_frame
        self._pipe: Any = None
        self._pb = None  # playback device, when playing a file
        self._align = None
        self._intr: Intrinsics | None = None
        self._depth_intr: Intrinsics | None = None
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._unread = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames = self.dropped = self.superseded = self.reconnects = 0
        self.recordings: list[str] = []  # files written by record=, one per pipeline start (never overwritten)
        self._record_index = 0
        self.last_error = ""
        self._dt_ema = 0.0

    @property
    def source(self) -> str:
        return f"playback {self.playback}" if self.playback else f"device {self.serial or '(first found)'}"

    # ---- pipeline ----------------------------------------------------------------------------------------------
    def _start(self) -> None:
        rs = _rs()
        cfg, pipe = rs.config(), rs.pipeline()
        if self.playback:
            cfg.enable_device_from_file(self.playback, repeat_playback=self.loop)
            cfg.enable_stream(rs.stream.color, rs.format.rgb8, 0)
            if self.depth:
                cfg.enable_stream(rs.stream.depth, rs.format.z16, 0)
        else:
            if self.serial:
                cfg.enable_device(self.serial)
            cfg.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, self.fps)
            if self.depth:
                cfg.enable_stream(rs.stream.depth, self.width, self.height, rs.format.z16, self.fps)
            if self.record:  # a new file per start: a reconnect never overwrites the previous session
                path, self._record_index = next_free_path(self.record, self._record_index)
                cfg.enable_record_to_file(path)
                self.recordings.append(path)
        pb = None
        if self.playback:
            # Resolving first creates the playback device that start() then uses, so real time can be switched off
            # before streaming (set after start, the first frames of a file are often lost). Pausing around start
            # and seeking to 0 was tried: it also orders the very first frames under heavy load, but resume() then
            # often stalls ≈10 s inside librealsense 2.59.
            try:
                pb = cfg.resolve(pipe).get_device().as_playback()
            except RuntimeError as e:
                wanted = "colour rgb8" + (" and depth z16" if self.depth else "")
                try:
                    held = ", ".join(recorded_streams(self.playback)) or "no streams"
                except RuntimeError as why:
                    held = f"unreadable ({why})"
                raise RuntimeError(f"requested {wanted}, the recording holds {held} (librealsense: {e})") from None
            pb.set_real_time(self.real_time)
        profile = pipe.start(cfg)
        self._intr = _intrinsics(profile.get_stream(rs.stream.color))
        self._depth_intr = None
        self._align = None
        if self.depth:
            if self.align_depth:
                self._align = rs.align(rs.stream.color)
            else:
                self._depth_intr = _intrinsics(profile.get_stream(rs.stream.depth))
        self._pipe, self._pb = pipe, pb

    def _stop_pipe(self) -> None:
        pipe, self._pipe, self._pb = self._pipe, None, None
        if pipe is not None:
            try:
                pipe.stop()
            except RuntimeError:
                pass  # already stopped, or the device is gone

    def open(self) -> None:
        """Start streaming. Raises CameraError naming the device or file if the first start fails."""
        if self._thread is not None:
            return
        for path in (self.playback, self.record):
            if path:
                _check_db3(path)
        if self.playback and not os.path.isfile(self.playback):
            raise CameraError(f"RealSense playback file not found: {self.playback}")
        try:
            self._start()
        except RuntimeError as e:
            self._stop_pipe()
            raise CameraError(f"cannot open RealSense {self.source}: {e}") from None
        intr = self._intr
        log.info(
            "opened %s: colour %s%s",
            self.source,
            "?" if intr is None else f"{intr.width}x{intr.height}",
            ", depth" if self.depth else "",
        )
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="realsense", daemon=True)
        self._thread.start()

    # ---- background thread -------------------------------------------------------------------------------------
    def _run(self) -> None:
        rs = _rs()
        backoff = BACKOFF_S[0]
        last_frame = time.monotonic()
        got_any = False
        while not self._stop.is_set():
            if self._pipe is None:
                if self._stop.wait(backoff):
                    break
                backoff = min(2 * backoff, BACKOFF_S[1])
                try:
                    self._start()
                except RuntimeError as e:
                    self._stop_pipe()
                    self.last_error = f"reopen failed: {e}"
                    continue
                self.reconnects += 1
                log.info("reopened %s (reconnect %d)", self.source, self.reconnects)
                last_frame, got_any = time.monotonic(), False
            try:
                ok, fs = self._pipe.try_wait_for_frames(int(POLL_S * 1000))
            except RuntimeError as e:  # device unplugged, pipeline stopped underneath, …
                self._lost(f"pipeline error: {e}")
                continue
            if not ok:
                if self._pb is not None and got_any and self._pb.current_status() == rs.playback_status.stopped:
                    self._lost("end of recording")
                elif time.monotonic() - last_frame > self.frame_timeout_s:
                    self._lost(f"no frame for {self.frame_timeout_s:.1f} s")
                continue
            try:
                frame = self._convert(fs)
            except RuntimeError as e:
                self._lost(f"frame error: {e}")
                continue
            if frame is None:
                continue
            last_frame, got_any, backoff = time.monotonic(), True, BACKOFF_S[0]
            self._publish(frame)
        self._stop_pipe()

    def _lost(self, reason: str) -> None:
        self.last_error = reason
        log.warning("%s: %s; reopening", self.source, reason)
        self._stop_pipe()

    def _convert(self, fs) -> Frame | None:
        recv = time.monotonic_ns()
        if self._align is not None:
            fs = self._align.process(fs)
        color = fs.get_color_frame()
        if not color:
            return None
        depth = fs.get_depth_frame() if self.depth else None
        if self._intr is None:  # set by _start before any frame is read
            return None
        return Frame(
            color=np.asanyarray(color.get_data()).copy(),
            depth=np.asanyarray(depth.get_data()).copy() if depth else None,
            depth_scale_m=float(depth.get_units()) if depth else 0.0,
            intrinsics=self._intr,
            depth_intrinsics=self._depth_intr if depth else None,
            frame_id=int(color.get_frame_number()),
            sensor_time_ns=int(round(color.get_timestamp() * 1e6)),
            recv_mono_ns=recv,
        )

    def _publish(self, frame: Frame) -> None:
        with self._cond:
            prev = self._latest
            if prev is not None:
                if self._unread:
                    self.superseded += 1
                if frame.frame_id > prev.frame_id + 1:
                    self.dropped += frame.frame_id - prev.frame_id - 1
                dt = (frame.recv_mono_ns - prev.recv_mono_ns) * 1e-9
                self._dt_ema = dt if self._dt_ema == 0 else self._dt_ema + 0.1 * (dt - self._dt_ema)
            self._latest, self._unread = frame, True
            self.frames += 1
            self._cond.notify_all()
        if self.on_frame is not None:
            self.on_frame(frame)

    # ---- caller side -------------------------------------------------------------------------------------------
    def read_latest(self, max_age_s: float = 0.5) -> Frame | None:
        """The newest frame if younger than max_age_s, else None. Never blocks."""
        with self._cond:
            f = self._latest
            self._unread = False
        if f is None or f.age_s(time.monotonic_ns()) > max_age_s:
            return None
        return f

    def wait_new(self, timeout_s: float) -> Frame | None:
        """Block up to timeout_s for a frame not returned before (read_latest/wait_new); None on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._unread, timeout_s):
                return None
            self._unread = False
            return self._latest

    def status(self) -> dict:
        return {
            "source": self.source,
            "streaming": self._pipe is not None,
            "frames": self.frames,
            "fps": round(1.0 / self._dt_ema, 1) if self._dt_ema > 0 else 0.0,
            "dropped": self.dropped,
            "superseded": self.superseded,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "recordings": list(self.recordings),
        }

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._stop_pipe()

    def __enter__(self) -> RealSenseCamera:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- synthetic recordings for tests --------------------------------------------------------------------------------


def synthetic_pixels(i: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame i of write_synthetic_db3: colour (R = i mod 256, G = x mod 256, B = y mod 256), depth 1000 + i (mm)."""
    color = np.empty((height, width, 3), np.uint8)
    color[..., 0] = i % 256
    color[..., 1] = (np.arange(width) % 256)[None, :]
    color[..., 2] = (np.arange(height) % 256)[:, None]
    return color, np.full((height, width), 1000 + i, np.uint16)


def synthetic_intrinsics(width: int, height: int) -> Intrinsics:
    f = 0.8 * width
    return Intrinsics(width=width, height=height, fx=f, fy=f, cx=width / 2, cy=height / 2)


def write_synthetic_db3(
    path: str, n: int = 10, width: int = 64, height: int = 48, fps: int = 30, depth: bool = True, pace: bool = False
) -> None:
    """Record n frames of synthetic_pixels from an rs.software_device (librealsense `examples/software-device`;
    rs.recorder writes it, rs.config.enable_device_from_file plays it back).
    Frame numbers 0…n−1, timestamps i/fps; depth units 1 mm. The recorder stores arrival times, so real-time
    playback replays the writing speed: pace=True writes at fps (n/fps seconds) for a realistic real-time rate."""
    rs = _rs()
    _check_db3(path)
    ci = synthetic_intrinsics(width, height)
    intr = rs.intrinsics()
    intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = width, height, ci.fx, ci.fy, ci.cx, ci.cy
    intr.model = rs.distortion.none
    dev = rs.software_device()

    def add(name, kind, uid, fmt, bpp):
        sensor = dev.add_sensor(name)
        s = rs.video_stream()
        s.type, s.index, s.uid = kind, 0, uid
        s.width, s.height, s.fps, s.bpp, s.fmt, s.intrinsics = width, height, fps, bpp, fmt, intr
        return sensor, sensor.add_video_stream(s), bpp

    streams = [add("Color", rs.stream.color, 0, rs.format.rgb8, 3)]
    if depth:
        streams.append(add("Depth", rs.stream.depth, 1, rs.format.z16, 2))
        streams[1][0].add_read_only_option(rs.option.depth_units, 0.001)
    rec = rs.recorder(path, dev)  # before the sensors are opened
    sync = rs.syncer()
    for sensor, prof, _ in streams:
        sensor.open(prof)
        sensor.start(sync)
    for i in range(n):
        pixels = synthetic_pixels(i, width, height)
        for (sensor, prof, bpp), px in zip(streams, pixels):
            f = rs.software_video_frame()
            f.pixels, f.stride, f.bpp = px, width * bpp, bpp
            f.timestamp, f.domain, f.frame_number = i * 1000.0 / fps, rs.timestamp_domain.hardware_clock, i
            f.profile = prof.as_video_stream_profile()
            if bpp == 2:
                f.depth_units = 0.001
            sensor.on_video_frame(f)
        if pace:
            time.sleep(1.0 / fps)
    for sensor, _, _ in streams:
        sensor.stop()
        sensor.close()
    del rec  # flushes and closes the .db3
