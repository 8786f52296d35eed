"""`edge` command line: run the stack, speak to it, stop it, write units, run the demo."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edge.common.yaml_config import parse_overrides

# Imports inside the commands: `edge estop` must not pay for the others (pydantic, the bus, the models).


def _bus(args):
    from edge.common.config import load_config
    from edge.msg.bus import Bus

    cfg = load_config(args.config, parse_overrides(args.set))
    return Bus(cfg.bus.run_dir, cfg.bus.tcp)


def cmd_run(args) -> int:
    from edge.common.config import load_config
    from edge.controls.commander import CommanderConflict, acquire_stack_lock, check_sole_commander
    from edge.system.manager import Manager
    from edge.system.process_config import procs_for

    cfg = load_config(args.config, parse_overrides(args.set))
    procs = procs_for(
        cfg.profile, args.only.split(",") if args.only else None, args.block.split(",") if args.block else None
    )
    try:  # one stack per bus directory and DDS domain, and nobody else commanding the robot (held until we exit)
        lock = acquire_stack_lock(cfg, "edge run")
        if any(p.name == "controlsd" for p in procs):
            check_sole_commander(cfg)
    except CommanderConflict as e:
        print(f"edge run: {e}", file=sys.stderr)
        return 3
    except RuntimeError as e:  # the robot's network interface is not up (robot.interface_wait_s)
        print(f"edge run: {e}", file=sys.stderr)
        return 4
    mgr = Manager(procs, args.config, args.set)
    mgr.start()
    try:
        return mgr.supervise()
    finally:
        lock.close()


def cmd_say(args) -> int:
    from edge.tools.operator_client import Operator

    op = Operator(_bus(args))
    qid = op.say(args.text, source="operator", grammar=args.grammar)
    if args.wait:
        for r in op.wait_for(qid, args.timeout):
            print(f"{r.kind:8s} {r.outcome:9s} commanded {r.commanded:+.3f} estimated {r.estimated:+.3f} {r.reason}")
    op.close()
    return 0


def cmd_script(args) -> int:
    from edge.tools.operator_client import Operator, read_script

    op = Operator(_bus(args))
    for sentence in read_script(args.file):
        qid = op.say(sentence, source="script", grammar=args.grammar)
        for r in op.wait_for(qid, args.timeout):
            print(f"{sentence!r}: {r.kind} {r.outcome} commanded {r.commanded:+.3f} estimated {r.estimated:+.3f}")
    op.close()
    return 0


def cmd_estop(args) -> int:
    from edge.tools.estop import send_estop

    send_estop(args.config, parse_overrides(args.set), args.reason)
    return 0


def cmd_instruct(args) -> int:
    from edge.tools.operator_client import instruct

    instruct(_bus(args), args.text)
    return 0


def cmd_stand(args) -> int:
    from edge.tools.operator_client import stand

    stand(_bus(args))
    return 0


def cmd_remote(args) -> int:
    from edge.tools.operator_client import remote

    remote(_bus(args), args.keys, args.hold)
    return 0


def cmd_units(args) -> int:
    from edge.system.process_config import render_units, write_units

    if args.write:
        for p in write_units(args.write):
            print(p)
        return 0
    stale = [
        n
        for n, text in render_units().items()
        if not (Path(args.check) / n).exists() or (Path(args.check) / n).read_text() != text
    ]
    if stale:
        print("stale units (run `make units`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


def cmd_demo(args) -> int:
    from edge.tools.demo import run_demo
    from edge.tools.report import summary_lines

    report = run_demo(Path(args.out), args.modes.split(","), config=args.config)
    print(f"\nreport: {Path(args.out) / 'latest' / 'report.json'} and report.png")
    print("\n".join(summary_lines(report)))
    return 1 if report["fell"] else 0


def cmd_report(args) -> int:
    from edge.msg.recording import RecordingError, read_recording
    from edge.tools.report import build_report, run_label, summary_lines

    path = Path(args.recording)
    out = Path(args.out) if args.out else path.with_name(path.stem + "-report")
    try:
        rec = read_recording(path)
        report = build_report({run_label(rec): rec}, out)
    except (OSError, RecordingError) as e:
        print(f"edge report: {e}", file=sys.stderr)
        return 2
    print(f"report: {out / 'report.json'} and report.png")
    print("\n".join(summary_lines(report)))
    return 0


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
        return 2
    print("\n".join(report.lines(args.max_diffs)))
    return 0 if report.ok else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="edge", description=__doc__)
    ap.add_argument("--config", help="EdgeConfig YAML (default: $EDGE_CONFIG or configs/sim.yaml)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="start the processes of the profile (Ctrl-C stops all)")
    p.add_argument("--only", help="comma-separated process names")
    p.add_argument("--block", help="comma-separated process names to leave out")
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("say", help="send one action sentence, as the VLM would")
    p.add_argument("text")
    p.add_argument("--grammar", choices=["navila", "streamvln"], default="navila")
    p.add_argument("--wait", action="store_true", help="print the results when done")
    p.add_argument("--timeout", type=float, default=60.0)
    p.set_defaults(fn=cmd_say)
    p = sub.add_parser("script", help="send a file of action sentences, each after the previous is done")
    p.add_argument("file")
    p.add_argument("--grammar", choices=["navila", "streamvln"], default="navila")
    p.add_argument("--timeout", type=float, default=60.0)
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
        "--modes", default="open_loop,closed_loop,vlm_overlap,vlm_no_overlap,vlm_tiny_navila,load_rt,load_no_rt"
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
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)9s %(levelname)s %(message)s")
    return args.fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
