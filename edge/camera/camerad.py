"""Camera process: a Camera (drivers.camera protocol; here a RealSense, live by serial or a .db3 recording) → topic
cameraFrame, header + raw pixels.

Every new frame is published as it arrives (latest-only topic; subscribers conflate). With --depth each frame is two
messages, z16 then rgb8, same frame_id (drivers/camera.py). The driver reopens a lost device with backoff by itself;
this loop only publishes and logs the driver's status every 5 s. Options are CLI flags until they move into config.
"""

from __future__ import annotations

import logging
import time

from drivers.camera import Camera, CameraError
from edge.camera.frames import frame_to_messages
from edge.system.process_main import Process, process_main

log = logging.getLogger("camerad")
STATUS_EVERY_S = 5.0


def add_args(ap) -> None:
    ap.add_argument("--serial", help="RealSense serial number (default: the first device found)")
    ap.add_argument("--playback", metavar="FILE.db3", help="play a recording instead of a live device")
    ap.add_argument("--width", type=int, help="default: camera.width of the config")
    ap.add_argument("--height", type=int, help="default: camera.height of the config")
    ap.add_argument("--fps", type=int, help="default: camera.fps of the config")
    ap.add_argument(
        "--depth",
        action="store_true",
        default=None,
        help="also publish depth (z16, mm, aligned to colour); default: camera.depth",
    )
    ap.add_argument("--no-align", action="store_true", help="publish depth in its own frame, not aligned")
    ap.add_argument("--loop", action="store_true", help="repeat the recording (else its end counts as a loss)")
    ap.add_argument("--no-real-time", action="store_true", help="play the recording as fast as it is read")
    ap.add_argument("--record", metavar="OUT.db3", help="also record the live streams to this file")


def run(proc: Process) -> int:
    cfg, stop, args = proc.cfg, proc.stop, proc.args
    from drivers.realsense import RealSenseCamera

    c = cfg.camera  # command-line flags override the config
    pick = lambda flag, default: default if flag is None else flag  # noqa: E731
    cam: Camera = RealSenseCamera(
        serial=args.serial or c.serial,
        playback=args.playback or c.playback,
        width=pick(args.width, c.width),
        height=pick(args.height, c.height),
        fps=pick(args.fps, c.fps),
        depth=pick(args.depth, c.depth),
        align_depth=not args.no_align,
        real_time=not args.no_real_time,
        loop=args.loop,
        record=args.record,
    )
    source = cam.status().get("source", "camera")
    proc.health.loading(f"opening RealSense {source}")
    try:
        cam.open()
    except (CameraError, ValueError) as e:
        proc.health.failed(str(e))
        return 1
    proc.health.ready(str(source))
    pub = proc.ports.pub["cameraFrame"]
    published = 0
    next_status = time.monotonic() + STATUS_EVERY_S
    try:
        while not stop.is_set():
            frame = cam.wait_new(0.1)
            if frame is not None:
                for header, pixels in frame_to_messages(frame):
                    pub.publish(header, pixels)
                published += 1
            if time.monotonic() >= next_status:
                next_status += STATUS_EVERY_S
                st = cam.status()
                log.info("published %d frames; %s", published, st)
                if st["streaming"]:
                    proc.health.ready(f"{st['source']}, {st['fps']:g} fps")
                else:
                    proc.health.degraded(f"{st['source']} not streaming: {st['last_error'] or 'reconnecting'}")
                proc.health.detail(frames=published, fps=st["fps"], reconnects=st["reconnects"])
    finally:
        cam.close()
    log.info("stopped: published %d frames; %s", published, cam.status())
    return 0


def main(argv=None) -> int:
    return process_main("camerad", run, argv, add_args=add_args)


if __name__ == "__main__":
    raise SystemExit(main())
