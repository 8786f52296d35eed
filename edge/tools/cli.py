"""`edge` command line: run the stack, speak to it, watch it, stop it, write units, run the demo.

Every command confirms what happened, in cm, degrees and ms, and exits 0 only when it did: 1 when the robot did not
do it (invalid, rejected, preempted, timed out, refused), 2 for a usage or config mistake, 3 when the stack is not
running or not ready, 4 when the robot's network interface is not up. Mistakes end in one line with a hint, never a
traceback.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

from edge.common.yaml_config import ConfigError, parse_overrides
from edge.tools.errors import EXIT_NO_INTERFACE, EXIT_NOT_DONE, EXIT_NOT_READY, EXIT_OK, EXIT_USAGE, OperatorError

# Imports inside the commands: `edge estop` must not pay for the others (pydantic, the bus, the models).

log = logging.getLogger("edge")
SENTENCE_HINT = "try e.g. 'move forward 50 cm', 'turn left 30 degrees', 'stop'"


def _config(args):
    from edge.common.config import load_config

    return load_config(args.config, parse_overrides(args.set))


def _bus(cfg):
    from edge.msg.bus import Bus

    return Bus(cfg.bus.run_dir, cfg.bus.tcp)


def cmd_run(args) -> int:
    from edge.controls.commander import CommanderConflict, acquire_stack_lock, check_sole_commander
    from edge.system.health import NotReadyError
    from edge.system.manager import Manager
    from edge.system.process_config import procs_for

    cfg = _config(args)
    try:
        procs = procs_for(
            cfg.profile, args.only.split(",") if args.only else None, args.block.split(",") if args.block else None
        )
    except ValueError as e:
        raise OperatorError(str(e), EXIT_USAGE) from None
    try:  # one stack per bus directory and DDS domain, and nobody else commanding the robot (held until we exit)
        lock = acquire_stack_lock(cfg, "edge run")
        if any(p.name == "controlsd" for p in procs):
            check_sole_commander(cfg)
    except CommanderConflict as e:
        raise OperatorError(str(e), EXIT_NOT_READY) from None
    except RuntimeError as e:  # the robot's network interface is not up (robot.interface_wait_s)
        raise OperatorError(str(e), EXIT_NO_INTERFACE) from None
    mgr = Manager(procs, args.config, args.set)
    t0 = time.monotonic()
    try:
        try:
            mgr.start()
            states = mgr.wait_ready(args.ready_timeout)
        except (NotReadyError, KeyboardInterrupt) as e:
            mgr.stop()
            if isinstance(e, KeyboardInterrupt):
                return 130
            raise OperatorError(f"stack did not start: {e}", EXIT_NOT_READY) from None
        for name, st in states.items():
            if st.state == "degraded":
                log.warning("%s is degraded: %s", name, st.reason)
        ctl = states.get("controlsd")
        if ctl is not None and ctl.reason.startswith("passive") and not cfg.control.auto_stand:
            nxt = "edge stand    (with the robot lying level), then: edge say 'move forward 50 cm' --wait"
        elif "vlmd" in states:
            nxt = "edge say 'move forward 50 cm' --wait    or: edge instruct 'walk to the door'"
        else:
            nxt = "edge say 'move forward 50 cm' --wait"
        print(
            f"stack ready in {time.monotonic() - t0:.1f} s: {', '.join(states)} ({cfg.profile}, bus "
            f"{cfg.bus.run_dir})\n  next: {nxt}\n  watch: edge status · stop: Ctrl-C",
            flush=True,
        )
        return mgr.supervise()
    finally:
        lock.close()


def _print_results(results, prefix: str = "") -> int:
    from edge.tools.operator_client import FAILED_OUTCOMES, describe_result

    for r in results:
        print(f"{prefix}{describe_result(r)}")
    return EXIT_NOT_DONE if any(r.outcome in FAILED_OUTCOMES for r in results) else EXIT_OK


def _check_sentence(cfg, text: str, grammar: str) -> str:
    """The parser's reading of a sentence, in units; OperatorError (nothing sent) if it is not an action."""
    from edge.navigation.parse import ActionParser, Forward, Invalid, Turn

    parsed = ActionParser(cfg.parser).parse(text, grammar, source="operator")
    if isinstance(parsed, Invalid):
        raise OperatorError(f"invalid, not sent: {parsed.reason}; {SENTENCE_HINT}")
    words = []
    for a in parsed.actions:
        if isinstance(a, Forward):
            words.append(f"forward {a.distance_m * 100:.0f} cm")
        elif isinstance(a, Turn):
            words.append(f"turn {'left' if a.angle_rad > 0 else 'right'} {abs(math.degrees(a.angle_rad)):.0f}°")
        else:
            words.append("stop")
    return ", ".join(words) + (f" ({parsed.note})" if parsed.note else "")


def cmd_say(args) -> int:
    from edge.tools.operator_client import Operator

    cfg = _config(args)
    meaning = _check_sentence(cfg, args.text, args.grammar)
    op = Operator(_bus(cfg), cfg)
    try:
        qid = op.say(args.text, source="operator", grammar=args.grammar, ready_timeout_s=args.ready_timeout)
        print(f"sent: {meaning} (sentence {op.sender}/{qid})", flush=True)
        if not args.wait:
            return EXIT_OK
        return _print_results(op.wait_for(qid, args.timeout))
    finally:
        op.close()


def cmd_script(args) -> int:
    from edge.tools.operator_client import Operator, read_script

    cfg = _config(args)
    sentences = read_script(args.file)
    for i, s in enumerate(sentences, 1):  # check every line before the robot moves
        try:
            _check_sentence(cfg, s, args.grammar)
        except OperatorError as e:
            raise OperatorError(f"{args.file} line {i} ({s!r}): {e}", EXIT_USAGE) from None
    op = Operator(_bus(cfg), cfg, name="script")
    try:
        for i, sentence in enumerate(sentences, 1):
            qid = op.say(sentence, source="script", grammar=args.grammar, ready_timeout_s=args.ready_timeout)
            rc = _print_results(op.wait_for(qid, args.timeout), prefix=f"{i}/{len(sentences)} {sentence!r}: ")
            if rc != EXIT_OK:
                print(f"script stopped at sentence {i} of {len(sentences)}", file=sys.stderr)
                return rc
        return EXIT_OK
    finally:
        op.close()


def cmd_estop(args) -> int:
    from edge.tools.estop import send_estop  # out before pydantic and the bus classes are even imported

    t0 = time.monotonic_ns()
    try:
        send_estop(args.config, parse_overrides(args.set), args.reason)
    except TimeoutError as e:
        raise OperatorError(str(e), EXIT_NOT_READY) from None
    from edge.tools.operator_client import confirm_damping

    st = confirm_damping(_bus(_config(args)), t0)
    print(f"damping, confirmed by control within {(time.monotonic_ns() - t0) * 1e-6:.0f} ms: {st.reason}")
    print("  latched: restart controlsd (or the stack) to stand up again")
    return EXIT_OK


def cmd_stand(args) -> int:
    from edge.tools.operator_client import stand

    cfg = _config(args)
    st = stand(_bus(cfg), cfg)
    print(f"control {st.mode}: {st.reason}")
    return EXIT_OK


def cmd_remote(args) -> int:
    from edge.tools.operator_client import remote

    remote(_bus(_config(args)), args.keys, args.hold)
    print(f"simulator: {args.keys} held for {args.hold * 1e3:.0f} ms (watch: edge echo controlState)")
    return EXIT_OK


def cmd_instruct(args) -> int:
    from edge.tools.operator_client import instruct

    cfg = _config(args)
    detail = instruct(_bus(cfg), args.text, cfg)
    print(f"instruction taken by vlmd ({detail.get('model', '?')}, {detail.get('backend', '?')}): {args.text!r}")
    print("  follow it: edge status · edge echo vlmOutput · edge echo actionResult")
    return EXIT_OK


def cmd_status(args) -> int:
    from edge.tools.status import run_status

    cfg = _config(args)
    return run_status(_bus(cfg), cfg, once=args.once, as_json=args.json, window_s=args.window)


def cmd_echo(args) -> int:
    from edge.tools.topics import echo

    return echo(_bus(_config(args)), args.topic, count=args.count, timeout_s=args.timeout, process=args.process)


def cmd_hz(args) -> int:
    from edge.tools.topics import hz

    return hz(_bus(_config(args)), args.topic, window_s=args.window, count=args.count, process=args.process)


def cmd_units(args) -> int:
    from edge.system.process_config import render_units, write_units

    if args.write:
        for p in write_units(args.write):
            print(p)
        return EXIT_OK
    stale = [
        n
        for n, text in render_units().items()
        if not (Path(args.check) / n).exists() or (Path(args.check) / n).read_text() != text
    ]
    if stale:
        print("stale units (run `make units`): " + ", ".join(stale), file=sys.stderr)
        return EXIT_NOT_DONE
    return EXIT_OK


def cmd_demo(args) -> int:
    from edge.tools.demo import run_demo
    from edge.tools.report import summary_lines

    report = run_demo(Path(args.out), args.modes.split(","), config=args.config)
    print(f"\nreport: {Path(args.out) / 'latest' / 'report.json'} and report.png")
    print("\n".join(summary_lines(report)))
    return EXIT_NOT_DONE if report["fell"] or report["failed"] else EXIT_OK


def cmd_report(args) -> int:
    from edge.tools.report import build_report, load_run, run_label, summary_lines

    path = Path(args.recording)
    out = Path(args.out) if args.out else path.with_name(path.stem + "-report")
    rec, _, failure = load_run(path)
    if rec is None:
        print(f"edge report: {failure}", file=sys.stderr)
        return EXIT_USAGE
    report = build_report({run_label(rec): rec}, out)
    print(f"report: {out / 'report.json'} and report.png")
    print("\n".join(summary_lines(report)))
    return EXIT_NOT_DONE if report["failed"] else EXIT_OK


def cmd_replay(args) -> int:
    from edge.common.config import load_config
    from edge.msg.recording import RecordingError
    from edge.tools.replay import ReplayError, replay_file

    overrides = parse_overrides(args.set)
    cfg = load_config(args.config, overrides) if args.config else None  # default: the recorded run's config
    try:
        report = replay_file(args.recording, args.process, cfg, overrides)
    except (OSError, RecordingError, ReplayError) as e:
        print(f"edge replay: {e}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(report.lines(args.max_diffs)))
    return EXIT_OK if report.ok else EXIT_NOT_DONE


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edge", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="EdgeConfig YAML (default: $EDGE_CONFIG or configs/sim.yaml)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    p = sub.add_parser("run", help="start the processes of the profile, wait until ready (Ctrl-C stops all)")
    p.add_argument("--only", help="comma-separated process names")
    p.add_argument("--block", help="comma-separated process names to leave out")
    p.add_argument("--ready-timeout", type=float, default=None, metavar="S", help="bound per process without progress")
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("say", help="send one action sentence, as the VLM would")
    p.add_argument("text")
    p.add_argument("--grammar", choices=["navila", "streamvln"], default="navila")
    p.add_argument("--wait", action="store_true", help="wait for the results and print them")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="bound on --wait")
    p.add_argument("--ready-timeout", type=float, default=30.0, metavar="S", help="bound on the stack being ready")
    p.set_defaults(fn=cmd_say)
    p = sub.add_parser("script", help="send a file of action sentences, each after the previous is done")
    p.add_argument("file")
    p.add_argument("--grammar", choices=["navila", "streamvln"], default="navila")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="bound per sentence")
    p.add_argument("--ready-timeout", type=float, default=30.0, metavar="S")
    p.set_defaults(fn=cmd_script)
    p = sub.add_parser("estop", help="damp the motors now (latched until control restarts)")
    p.add_argument("--reason", default="operator")
    p.set_defaults(fn=cmd_estop)
    sub.add_parser("stand", help="confirm stand-up on the real robot").set_defaults(fn=cmd_stand)
    p = sub.add_parser("remote", help="simulator: press Unitree remote keys (L2+B damps, L2+A stands up)")
    p.add_argument("keys", help="keys held together, e.g. L2+B")
    p.add_argument("--hold", type=float, default=0.5, help="seconds (default 0.5)")
    p.set_defaults(fn=cmd_remote)
    p = sub.add_parser("instruct", help="give the VLM a navigation instruction (starts an episode)")
    p.add_argument("text")
    p.set_defaults(fn=cmd_instruct)
    p = sub.add_parser("status", help="live view of the running stack: processes, topics, control loop, VLM")
    p.add_argument("--once", action="store_true", help="print one view and exit (0: every process up)")
    p.add_argument("--json", action="store_true", help="with --once: the view as JSON")
    p.add_argument("--window", type=float, default=2.0, metavar="S", help="measurement window")
    p.set_defaults(fn=cmd_status)
    p = sub.add_parser("echo", help="print the messages of a topic as JSON lines")
    p.add_argument("topic")
    p.add_argument("-n", "--count", type=int, default=0, help="stop after N messages (0: until Ctrl-C)")
    p.add_argument("--timeout", type=float, default=0.0, metavar="S", help="give up after S s (0: never)")
    p.add_argument("--process", help="processState: only this process (default: all)")
    p.set_defaults(fn=cmd_echo)
    p = sub.add_parser("hz", help="measure the rate of a topic against its nominal rate")
    p.add_argument("topic")
    p.add_argument("--window", type=float, default=2.0, metavar="S", help="report every S s")
    p.add_argument("-n", "--count", type=int, default=0, help="stop after N reports (0: until Ctrl-C)")
    p.add_argument("--process", help="processState: only this process (default: all)")
    p.set_defaults(fn=cmd_hz)
    p = sub.add_parser("units", help="write or check the systemd units generated from the process table")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", metavar="DIR")
    g.add_argument("--check", metavar="DIR")
    p.set_defaults(fn=cmd_units)
    from edge.tools import calibrate, doctor  # issue 9: self-contained subcommands (add_parser, fn)

    doctor.add_parser(sub)
    calibrate.add_parser(sub)
    p = sub.add_parser("demo", help="simulated Go2 through the whole stack, open- and closed-loop; writes a report")
    p.add_argument("--out", default="runs")
    p.add_argument(
        "--modes", default="vln,open_loop,closed_loop,vlm_overlap,vlm_no_overlap,vlm_tiny_navila,load_rt,load_no_rt"
    )
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("report", help="the report (report.json, report.png) of a recorded session (MCAP)")
    p.add_argument("recording", help="an MCAP file written by recordd")
    p.add_argument("--out", help="folder for report.json / report.png (default: next to the recording)")
    p.set_defaults(fn=cmd_report)
    p = sub.add_parser(
        "replay",
        help="feed a recording into one process's step, in lock-step, and diff its outputs (exit 1 on a difference)",
    )
    p.add_argument("recording", help="an MCAP file written by recordd")
    p.add_argument("--process", required=True, choices=["navigatord", "vlmd"])
    p.add_argument("--max-diffs", type=int, default=20, help="differences to print")
    p.set_defaults(fn=cmd_replay)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd != "estop":  # the e-stop goes out first; its confirmation logs nothing
        from edge.system.logs import setup_logging

        setup_logging("edge")
    try:
        return args.fn(args)
    except ConfigError as e:
        print(f"edge: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OperatorError as e:
        print(f"edge {args.cmd}: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
