"""Command line: run the Azure Backup emulator until SIGINT/SIGTERM.

    python -m airflow_backup_provider.emulator --port 8443 --ca-file /tmp/emu-ca.pem --time-scale 60

Standard output gets exactly three ``NAME=value`` lines (Airflow connection JSON, then the two CA variables, which
name the combined bundle: system CAs plus the emulator's CA), so a shell can pick them up, e.g.
``while IFS= read -r line; do export "$line"; done`` (or pass ``--export`` for ``export NAME='value'`` lines meant for
``eval``). Logs go to standard error. A busy ``--port`` ends with one line on standard error and exit status 1;
``--port 0`` picks a free port.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .config import EmulatorConfig
from .facade import Emulator


def build_parser() -> argparse.ArgumentParser:
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(
        prog="python -m airflow_backup_provider.emulator",
        description="HTTPS emulator of Entra ID (token endpoint) and the Azure Backup (Recovery Services) ARM API.",
    )
    parser.add_argument("--host", default=defaults.host, help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default %(default)s)")
    parser.add_argument("--ca-file", required=True, help="where to write the throwaway CA certificate (PEM)")
    parser.add_argument(
        "--ca-bundle",
        help="where to write the system CAs plus the emulator CA, printed as REQUESTS_CA_BUNDLE / SSL_CERT_FILE "
        "(default: CA-FILE without .pem, plus -bundle.pem)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=defaults.time_scale,
        help="virtual seconds per wall second; 60 makes a 20-minute backup take 20 s (default %(default)s)",
    )
    parser.add_argument(
        "--token-lifetime", type=int, default=defaults.token_lifetime, help="access token lifetime in seconds"
    )
    parser.add_argument("--retry-after", type=int, default=defaults.retry_after, help="Retry-After of 202 responses")
    parser.add_argument("--job-page-size", type=int, default=defaults.job_page_size, help="jobs per list page")
    parser.add_argument(
        "--item-page-size", type=int, default=defaults.item_page_size, help="protected items per list page"
    )
    parser.add_argument(
        "--operation-polls",
        type=int,
        default=defaults.operation_polls_in_progress,
        help="polls an async operation answers InProgress before it succeeds",
    )
    parser.add_argument(
        "--vaults",
        type=int,
        default=defaults.vaults,
        help="vaults in the seeded resource group: vault-demo, vault-demo-02 ... (default %(default)s)",
    )
    parser.add_argument(
        "--items-per-vault",
        type=int,
        default=defaults.items_per_vault,
        help="healthy generated items (VM, file share, SQL database in turn) in every vault (default %(default)s)",
    )
    parser.add_argument(
        "--health-states",
        action="store_true",
        help="add to vault-demo one stale, one never backed up, one failed and one protection-stopped item",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=defaults.jobs,
        help="backup jobs already InProgress at start, spread over the vaults, each on its own VM item "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--jobs-duration",
        type=float,
        default=defaults.jobs_duration,
        help="virtual seconds those jobs run (default %(default)s: a day)",
    )
    parser.add_argument(
        "--max-recorded-requests",
        type=int,
        default=defaults.max_recorded_requests,
        help="the request log keeps the newest N requests (default %(default)s)",
    )
    parser.add_argument("--export", action="store_true", help="print `export NAME='value'` lines instead")
    parser.add_argument("--log-level", default="WARNING", help="log level on stderr (default %(default)s)")
    return parser


def _config(args: argparse.Namespace) -> EmulatorConfig:
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        time_scale=args.time_scale,
        token_lifetime=args.token_lifetime,
        retry_after=args.retry_after,
        job_page_size=args.job_page_size,
        item_page_size=args.item_page_size,
        operation_polls_in_progress=args.operation_polls,
        vaults=args.vaults,
        items_per_vault=args.items_per_vault,
        health_states=args.health_states,
        jobs=args.jobs,
        jobs_duration=args.jobs_duration,
        max_recorded_requests=args.max_recorded_requests,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = _config(args)
    except ValueError as error:
        parser.error(str(error))  # one line naming the setting and value, exit status 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    try:
        emulator = Emulator(config, ca_file=args.ca_file, ca_bundle=args.ca_bundle).start()
    except OSError as error:  # a busy port: one line that names it and says what to do, no traceback
        print(f"{parser.prog}: error: {error.strerror or error}", file=sys.stderr)
        return 1
    try:
        env = emulator.client_env()
        for name in ("AIRFLOW_CONN_AZURE_BACKUP_DEFAULT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
            value = env[name]
            line = f"export {name}={shlex.quote(value)}" if args.export else f"{name}={value}"
            print(line)  # the CLI's only output: machine-readable settings for the client
        sys.stdout.flush()
        logging.getLogger(__name__).info("serving at %s; SIGINT/SIGTERM to stop", emulator.base_url)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
