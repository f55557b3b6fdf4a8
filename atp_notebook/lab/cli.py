"""``atp-lab``: the command line of the lab.

    atp-lab up [--agent-timeout S]   bring the lab up, or check and repair it
    atp-lab down                     stop what the lab started
    atp-lab status [--json]          exit 0 only when every URI and every agent answers
    atp-lab config                   print the path of the lab's atp.yaml
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from atp_notebook.errors import AtpError
from atp_notebook.lab import controller
from atp_notebook.lab.paths import LabPaths
from atp_notebook.lab.status import LabStatus, lab_status

EXIT_FAILED = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atp-lab",
        description="A libvirt host with test VMs on this machine, for atp-notebook.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="bring the lab up (idempotent: checks and repairs)")
    up.add_argument("--agent-timeout", type=float, default=controller.AGENT_TIMEOUT_S,
                    metavar="S", help="seconds to wait for the guest agents (default %(default)s)")
    sub.add_parser("down", help="stop the VMs and daemons the lab started")
    status = sub.add_parser("status", help="exit 0 only when every URI and agent answers")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    sub.add_parser("config", help="print the path of the lab's atp.yaml")
    return parser


def _print_status(status: LabStatus) -> None:
    for host in status.hosts:
        mark = "ok  " if host.ok else "FAIL"
        detail = f"{len(host.domains)} domains" if host.ok else host.error
        print(f"{mark} host {host.id:<6} {host.uri}  ({detail})")
    for vm in status.vms:
        mark = "ok  " if vm.ok else "FAIL"
        ports = ", ".join(
            f"{kind} {port}" for kind, port in (("spice", vm.spice_port),
                                                ("spice-tls", vm.spice_tls_port))
            if port is not None
        )
        agent = "agent answers" if vm.agent else "agent silent"
        print(f"{mark} vm   {vm.name:<8} {vm.state}, {agent}, {ports}"
              + (f" ({vm.error})" if vm.error else ""))
    print(f"config: {status.config or '(not written yet: run atp-lab up)'}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command in ("up", "down") else logging.WARNING,
        format="atp-lab: %(message)s",
    )
    paths = LabPaths.default()
    try:
        if args.command == "up":
            report = controller.up(paths, agent_timeout=args.agent_timeout)
            changed = report.started + report.restarted
            what = f"started {', '.join(changed)}" if changed else "everything was up already"
            print(f"lab is up ({what}) in {report.seconds:.1f} s; config: {report.config}")
        elif args.command == "down":
            stopped = controller.down(paths).stopped
            print(f"lab is down (stopped {', '.join(stopped) or 'nothing: nothing was up'})")
        elif args.command == "status":
            status = lab_status(paths)
            if args.json:
                print(json.dumps(status.to_json(), indent=2))
            else:
                _print_status(status)
            return 0 if status.ok else EXIT_FAILED
        elif args.command == "config":
            if not paths.config_file.exists():
                print(f"atp-lab: {paths.config_file} does not exist yet; run `atp-lab up`",
                      file=sys.stderr)
                return EXIT_FAILED
            print(paths.config_file)
    except AtpError as exc:
        print(f"atp-lab {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"atp-lab {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
