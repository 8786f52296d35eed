"""`python -m edge.vlm.remote keys DIR NAME [--rotate]` and `python -m edge.vlm.remote serve …` (docs/remote.md)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from edge.common.config import ConfigError, RemoteConfig, load_config
from edge.vlm.model import build_model
from edge.vlm.remote.keys import KeyFileError, write_keypair
from edge.vlm.remote.server import VlmServer, server_key_files
from engines.vlm.models import FixedAnswerVlm, VisionLanguageModel

log = logging.getLogger("edge.vlm.remote")
ANY_KEY_BANNER = """
******************************************************************************************************
*  --clients '*' --allow-any-key: this server accepts EVERY CURVE key. Anyone who can reach it can   *
*  use the GPU and read its answers. Traffic is still encrypted, but nobody is authenticated.        *
*  Use it on an isolated test network only; list the robots' public keys in a clients folder instead. *
******************************************************************************************************"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge.vlm.remote", description="Remote VLM: keys and GPU server")
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keys", help="write DIR/NAME.key (public) and DIR/NAME.key_secret (0600); never overwrites")
    k.add_argument("dir")
    k.add_argument("name")
    k.add_argument(
        "--rotate",
        action="store_true",
        help="replace an existing pair, keeping the old one as NAME.previous.key / .key_secret",
    )
    s = sub.add_parser("serve", help="serve a VLM to authorised robots")
    s.add_argument("--bind", default="tcp://0.0.0.0:5560")
    s.add_argument("--keys", required=True, help="directory with this server's NAME.key_secret")
    s.add_argument("--name", default="server", help="key name in --keys (default: server)")
    s.add_argument(
        "--previous-bind",
        metavar="ENDPOINT",
        help="also serve the rotated-out key NAME.previous.key_secret here, until every robot has moved",
    )
    s.add_argument("--clients", required=True, help="directory of the robots' public *.key files (re-read on change)")
    s.add_argument("--allow-any-key", action="store_true", help="with --clients '*': accept every key (test only)")
    s.add_argument("--fixed", metavar="TEXT", help="answer TEXT to every query (smoke tests)")
    s.add_argument(
        "--config",
        help="EdgeConfig YAML: its vlm section names the model (unless --fixed), its remote section the limits",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s vlm-server %(levelname)s %(message)s")
    if args.cmd == "keys":
        try:
            for path in write_keypair(args.dir, args.name, rotate=args.rotate):
                print(path)
        except (FileExistsError, ValueError, OSError) as e:
            print(f"keys: {e}", file=sys.stderr)
            return 1
        if args.rotate:
            print(f"old pair kept as {args.name}.previous.*: remove it once no peer uses it", file=sys.stderr)
        return 0
    return _serve(ap, args)


def _serve(ap: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    any_key = args.clients == "*"
    if any_key and not args.allow_any_key:
        ap.error(
            "--clients '*' would accept every key: refused. Add --allow-any-key if you really mean it "
            "(isolated test networks only)"
        )
    if args.allow_any_key and not any_key:
        ap.error("--allow-any-key only goes with --clients '*'")
    if args.fixed is None and args.config is None:
        ap.error("serve: give a model: --fixed TEXT or --config FILE")
    try:
        cfg = load_config(args.config) if args.config else None
    except ConfigError as e:
        print(f"serve: {e}", file=sys.stderr)
        return 2
    limits = cfg.remote if cfg is not None else RemoteConfig()
    current, previous = server_key_files(args.keys, args.name)
    if args.previous_bind and previous is None:
        ap.error(f"--previous-bind: no {args.name}.previous.key_secret in {args.keys} (nothing was rotated)")
    if previous is not None and not args.previous_bind:
        log.warning(
            "%s exists but no --previous-bind: robots still holding the old server key are locked out", previous
        )
    if any_key:
        for line in ANY_KEY_BANNER.strip("\n").splitlines():
            log.warning(line)
    model: VisionLanguageModel
    if args.fixed is not None:
        model = FixedAnswerVlm([args.fixed])
    else:
        assert cfg is not None
        model = build_model(cfg.vlm)
    try:
        server = VlmServer(
            args.bind,
            model,
            current,
            None if any_key else args.clients,
            limits=limits,
            previous=(args.previous_bind, previous) if args.previous_bind and previous is not None else None,
            allow_any_key=any_key,
        )
    except KeyFileError as e:
        print(f"serve: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server.serve(stop)
    finally:
        server.close()
        st = server.stats
        log.info(
            "served %d requests: %d answered, %d refused, %d failed, %d expired, %d superseded",
            st.requests,
            st.answered,
            st.refused,
            st.failed,
            st.expired,
            st.superseded,
        )
    return 0
