"""`medviewer pacs servers|echo|find|get|send`: a PACS or DICOMweb server from the command line.

``--server`` takes a configured server's name or a one-off ``AE@host:port`` / URL. A server
with a password or token takes it from the keyring (``servers add --ask-secret``), else from
``MEDVIEWER_PACS_SECRET``, else asks on a terminal. pynetdicom and requests load inside the
jobs, so ``medviewer --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from medviewer.errors import UserError

SECRET_ENV = "MEDVIEWER_PACS_SECRET"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pacs", help="query, retrieve from and send to a PACS or DICOMweb server",
        description="Work with PACS (DIMSE) and DICOMweb servers. --server takes a configured "
                    "name or a one-off AE@host:port or http(s) URL.")
    actions = parser.add_subparsers(dest="pacs_action", metavar="ACTION", required=True)

    servers = actions.add_parser("servers", help="list, add or remove configured servers")
    servers.add_argument("--json", action="store_true", help="print JSON")
    servers.set_defaults(handler=_list_servers)
    server_actions = servers.add_subparsers(dest="servers_action", metavar="ACTION")
    adding = server_actions.add_parser("add", help="add or replace a server")
    adding.add_argument("name")
    where = adding.add_mutually_exclusive_group(required=True)
    where.add_argument("--dimse", metavar="AE@HOST:PORT", help="a PACS: its AE title, host, port")
    where.add_argument("--url", help="a DICOMweb base URL, e.g. https://pacs/dicom-web")
    adding.add_argument("--calling-ae", default="MEDVIEWER", help="MedViewer's own AE title")
    adding.add_argument("--retrieve", choices=("get", "move"), default="get",
                        help="DIMSE retrieve: C-GET, or C-MOVE to MedViewer's storage SCP")
    adding.add_argument("--move-port", type=int, default=11112,
                        help="the port MedViewer receives C-MOVE on (default 11112)")
    adding.add_argument("--auth", choices=("none", "basic", "bearer"), default="none",
                        help="DICOMweb authentication")
    adding.add_argument("--username", default="", help="DICOMweb basic authentication user")
    adding.add_argument("--ca-file", default="", help="a CA bundle to trust for https")
    adding.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    adding.add_argument("--ask-secret", action="store_true",
                        help="ask for the password or token now and keep it in the keyring")
    adding.add_argument("--json", action="store_true", help="print JSON")
    adding.set_defaults(handler=_add_server)
    removing = server_actions.add_parser("remove", help="remove a server and its secret")
    removing.add_argument("name")
    removing.add_argument("--json", action="store_true", help="print JSON")
    removing.set_defaults(handler=_remove_server)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--server", required=True, metavar="NAME|AE@HOST:PORT|URL")
        sub.add_argument("--json", action="store_true", help="print JSON")

    echo = actions.add_parser("echo", help="check that a server answers (C-ECHO / QIDO-RS)")
    common(echo)
    echo.set_defaults(handler=_echo)

    find = actions.add_parser("find", help="search studies (or one study's series)")
    common(find)
    find.add_argument("--patient-id", default="")
    find.add_argument("--patient-name", default="", help="a prefix; * and ? are wildcards")
    find.add_argument("--study-date", default="", metavar="FROM-TO",
                      help="YYYYMMDD-YYYYMMDD; either end may be left out")
    find.add_argument("--modality", default="")
    find.add_argument("--accession", default="")
    find.add_argument("--series-of", metavar="STUDY_UID", help="list this study's series")
    find.set_defaults(handler=_find)

    get = actions.add_parser("get", help="retrieve a study or series into a folder")
    common(get)
    get.add_argument("study_uid", metavar="STUDY_UID")
    get.add_argument("series_uid", metavar="SERIES_UID", nargs="?")
    get.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                     help="files land in DIR/<study>/<series>/<instance>.dcm")
    get.set_defaults(handler=_get)

    send = actions.add_parser("send", help="send DICOM files (e.g. SRs) to a server")
    common(send)
    send.add_argument("paths", nargs="+", type=Path, metavar="FILE|DIR")
    send.set_defaults(handler=_send)


# ---------------------------------------------------------------- servers


def _list_servers(args: argparse.Namespace) -> int:
    from medviewer.commands.output import print_json
    from medviewer.pacs.servers import config_path, load_config, secrets

    config = load_config()
    if args.json:
        print_json({"config": str(config_path()), "keyring": secrets.keyring_available(),
                    "servers": [s.to_dict() for s in config.servers]})
        return 0
    if not config.servers:
        print("No servers configured yet; add one with 'medviewer pacs servers add NAME "
              "--dimse AE@HOST:PORT' or '--url URL'.")
        return 0
    for server in config.servers:
        extra = f", {server.auth} authentication" if server.needs_secret else ""
        retrieve = f", retrieve by C-{server.retrieve_method.upper()}" \
            if server.kind == "dimse" else ""
        print(f"{server.name}: {server.kind} {server.address}{retrieve}{extra}")
    return 0


def _add_server(args: argparse.Namespace) -> int:
    from medviewer.commands.output import print_json
    from medviewer.pacs.servers import ServerConfig, parse_address, put_server, secrets

    if args.dimse:
        parsed = parse_address(args.dimse)
        if parsed is None or parsed.kind != "dimse":
            raise UserError(f"'{args.dimse}' is not an address like AE@host:port.")
        server = ServerConfig(args.name, "dimse", ae_title=parsed.ae_title, host=parsed.host,
                              port=parsed.port, calling_ae=args.calling_ae,
                              retrieve_method=args.retrieve, move_port=args.move_port,
                              timeout_s=args.timeout)
    else:
        server = ServerConfig(args.name, "dicomweb", url=args.url, auth=args.auth,
                              username=args.username, ca_file=args.ca_file,
                              calling_ae=args.calling_ae, timeout_s=args.timeout)
    put_server(server)
    notice = None
    if args.ask_secret and server.needs_secret:
        import getpass

        notice = secrets.set(server.name, getpass.getpass(f"Secret for {server.name}: "))
    if args.json:
        print_json({"added": server.checked().to_dict(), "notice": notice})
    else:
        print(f"Saved server '{server.name}' ({server.address}).")
        if notice:
            print(f"Notice: {notice}")
    return 0


def _remove_server(args: argparse.Namespace) -> int:
    from medviewer.commands.output import print_json
    from medviewer.pacs.servers import remove_server

    remove_server(args.name)
    if args.json:
        print_json({"removed": args.name})
    else:
        print(f"Removed server '{args.name}' and its stored secret.")
    return 0


def _server_and_secret(args: argparse.Namespace):
    from medviewer.pacs.servers import resolve_server, secrets

    server = resolve_server(args.server)
    if not server.needs_secret or secrets.get(server.name):
        return server, None
    if os.environ.get(SECRET_ENV):
        return server, os.environ[SECRET_ENV]
    if sys.stdin.isatty():
        import getpass

        return server, getpass.getpass(f"Secret for {server.name}: ")
    return server, None  # the job says the secret is missing


# ---------------------------------------------------------------- echo, find, get, send


def _echo(args: argparse.Namespace) -> int:
    from medviewer.commands.output import print_json
    from medviewer.jobs import run_to_end
    from medviewer.pacs.operations import echo_job

    server, secret = _server_and_secret(args)
    milliseconds = run_to_end(echo_job(server, secret))
    if args.json:
        print_json({"server": server.name, "address": server.address,
                    "milliseconds": round(milliseconds, 1)})
    else:
        print(f"{server.name} ({server.address}) answered in {milliseconds:.0f} ms.")
    return 0


def _find(args: argparse.Namespace) -> int:
    from medviewer.commands.output import print_json
    from medviewer.jobs import run_to_end
    from medviewer.pacs.operations import find_series_job, find_studies_job
    from medviewer.pacs.query import StudyQuery, parse_date_range

    server, secret = _server_and_secret(args)
    if args.series_of:
        series = run_to_end(find_series_job(server, args.series_of, secret))
        if args.json:
            print_json({"server": server.name, "study_uid": args.series_of,
                        "series": [vars(s) for s in series]})
            return 0
        for s in series:
            print(f"{s.number if s.number is not None else '-':>4}  {s.modality:<3} "
                  f"{s.instances if s.instances is not None else '?':>5} images  "
                  f"{s.description}  {s.series_uid}")
        print(f"{len(series)} series.")
        return 0
    start, end = parse_date_range(args.study_date) if args.study_date else (None, None)
    query = StudyQuery(patient_id=args.patient_id, patient_name=args.patient_name,
                       date_from=start, date_to=end, modality=args.modality,
                       accession=args.accession)
    studies = run_to_end(find_studies_job(server, query, secret))
    if args.json:
        print_json({"server": server.name, "studies": [s.to_dict() for s in studies]})
        return 0
    for s in studies:
        print(f"{s.date or '--------'}  {s.patient_id:<12} {s.patient_name:<24} "
              f"{'/'.join(s.modalities):<8} {s.series_count or '?':>3} series "
              f"{s.instance_count or '?':>5} images  {s.description}  {s.study_uid}")
    print(f"{len(studies)} studies.")
    return 0


def _get(args: argparse.Namespace) -> int:
    from medviewer.commands.output import print_json
    from medviewer.jobs import run_to_end
    from medviewer.pacs.operations import retrieve_job

    server, secret = _server_and_secret(args)
    result = run_to_end(retrieve_job(server, args.study_uid, args.series_uid,
                                     root=args.output, secret=secret))
    if args.json:
        print_json(result.to_dict())
    else:
        print(f"Retrieved {len(result.paths)} instances from {server.name} into "
              f"{result.folder} in {result.seconds:.1f} s.")
    return 0


def _send(args: argparse.Namespace) -> int:
    from medviewer.commands.output import print_json
    from medviewer.jobs import run_to_end
    from medviewer.pacs.operations import send_job

    server, secret = _server_and_secret(args)
    result = run_to_end(send_job(server, args.paths, secret))
    if args.json:
        print_json(result.to_dict())
    else:
        print(f"Sent {result.sent} files to {server.name}.")
    return 0
