"""``gitops-bot sim``: run the local GitHub simulator standalone and print how to reach it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from bot.sim import Driver, Person, Simulator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--data", type=Path, help="directory for the bare repositories (default: a temp dir)")
    parser.add_argument("--webhook-url", help="where to deliver the App's webhooks")
    parser.add_argument("--webhook-secret", help="HMAC secret for webhooks (default: a random one, printed)")
    parser.add_argument("--app-id", type=int, default=4242, help="the App's id (default 4242)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault-injection RNG")
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="LOGIN",
        help="create a user and print a personal token for it (repeatable)",
    )
    parser.add_argument("--org", action="append", default=[], metavar="LOGIN", help="create an organisation")
    parser.add_argument(
        "--repo",
        action="append",
        default=[],
        metavar="OWNER/NAME",
        help="create an empty repository (its owner must be a --user or --org)",
    )
    parser.add_argument(
        "--install",
        action="append",
        default=[],
        metavar="ACCOUNT",
        help="install the App on an account (repeatable)",
    )
    parser.add_argument(
        "--push",
        action="append",
        default=[],
        metavar="OWNER/NAME=DIR",
        help="push the files of DIR to the default branch of a --repo, as the first --user",
    )


async def push_dirs(sim: Simulator, args: argparse.Namespace) -> dict[str, str]:
    """Push each ``OWNER/NAME=DIR`` of ``--push``; return the new head sha per repository."""
    if not args.push:
        return {}
    if not args.user:
        raise SystemExit("--push needs a --user to push as")
    heads: dict[str, str] = {}
    async with Driver(sim, sim.data_dir / "driver") as driver:
        login = args.user[0]
        user = sim.world.users[login]
        driver.people[login] = Person(login, sim.user_token(login), next(iter(user.emails)), user.name)
        for spec in args.push:
            full, _, directory = spec.partition("=")
            if (
                full not in sim.world.repos
                or not directory
                or not await asyncio.to_thread(Path(directory).is_dir)
            ):
                raise SystemExit(f"--push {spec}: give a --repo and an existing directory as OWNER/NAME=DIR")
            branch = sim.world.repos[full].default_branch
            heads[full] = await driver.push_dir(login, full, branch, directory, message=f"Import {directory}")
    return heads


def setup(sim: Simulator, args: argparse.Namespace) -> dict[str, Any]:
    """Create the requested people and repositories; return what to print (tokens included)."""
    tokens: dict[str, str] = {}
    for login in args.user:
        sim.create_user(login)
        tokens[login] = sim.user_token(login)
    for login in args.org:
        sim.create_org(login, members=args.user)
    for full in args.repo:
        owner, _, name = full.partition("/")
        if not name or sim.world.account(owner) is None:
            raise SystemExit(f"--repo {full}: create its owner with --user or --org first, as OWNER/NAME")
        sim.create_repo(owner, name)
        for login in args.user:
            if login != owner:
                sim.set_permission(full, login, "write")
    installations = {acct: sim.install_app(acct).id for acct in args.install}
    key_path = sim.data_dir / "app-private-key.pem"
    key_path.write_text(sim.private_key_pem)
    key_path.chmod(0o600)
    return {
        **sim.info(),
        "installations": installations,
        "private_key_path": str(key_path),
        "webhook_secret": sim.webhook_secret,
        "user_tokens": tokens,
    }


async def serve(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        data = args.data or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gitops-sim-")))
        sim = Simulator(
            data,
            host=args.host,
            port=args.port,
            webhook_url=args.webhook_url,
            webhook_secret=args.webhook_secret,
            app_id=args.app_id,
            seed=args.seed,
        )
        async with sim:
            info = setup(sim, args)
            info["pushed"] = await push_dirs(sim, args)
            print(json.dumps(info), flush=True)
            print(
                f"GitHub simulator on {sim.base_url} (admin: {sim.base_url}/_sim/info); Ctrl-C stops it",
                file=sys.stderr,
                flush=True,
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(serve(args))
    except OSError as exc:
        # a taken port or an unwritable --data directory: say which, without a traceback
        print(f"gitops-bot sim: cannot start on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
