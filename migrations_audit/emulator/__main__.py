"""python -m migrations_audit.emulator --host 127.0.0.1 --port 8100 [--seed N] [faults...]"""

import argparse
import logging
from datetime import date

import uvicorn

from .compression import CODINGS
from .core import EmulatorOptions
from .server import EmulatorApp, ServerOptions


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Emulator of the Anthropic API (2023-01-01, 2023-06-01, 2026-10-21)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--seed", type=int, default=0, help="seeds the generated text (default 0)")
    parser.add_argument("--vary", action="store_true", help="generated text varies on every call")
    parser.add_argument("--api-key", action="append", default=[], help="accept only these keys (repeatable)")
    parser.add_argument("--max-body-bytes", type=int, default=32 * 1024 * 1024)
    parser.add_argument("--retry-after", type=int, default=1, help="seconds in retry-after of a 429")
    parser.add_argument("--first-token-delay-ms", type=float, default=0.0)
    parser.add_argument("--event-delay-ms", type=float, default=0.0)
    for fault in ("429", "529", "500", "stream-error", "drop"):
        parser.add_argument(
            f"--fault-rate-{fault}",
            type=float,
            default=0.0,
            metavar="P",
            help=f"share of requests answered with fault {fault} (0..1)",
        )
    parser.add_argument(
        "--as-of",
        type=date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="answer as the API did that day: later models and models retired by then are unknown (404)",
    )
    parser.add_argument(
        "--pad-stream-json",
        action="store_true",
        help="pad the JSON of stream data: lines with spaces before its closing brace, as real streams do",
    )
    parser.add_argument(
        "--batch-seconds", type=float, default=0.0, help="how long a message batch stays in_progress"
    )
    parser.add_argument(
        "--compress",
        action="append",
        default=[],
        choices=CODINGS,
        help="compress JSON answers with this coding when the request's Accept-Encoding allows it "
        "(repeatable, in order of preference)",
    )
    parser.add_argument(
        "--compress-streams", action="store_true", help="compress event streams too (each event flushed)"
    )
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    options = ServerOptions(
        core=EmulatorOptions(
            seed=args.seed,
            vary=args.vary,
            max_body_bytes=args.max_body_bytes,
            api_keys=frozenset(args.api_key),
            retry_after_seconds=args.retry_after,
            as_of=args.as_of,
            pad_stream_json=args.pad_stream_json,
            batch_seconds=args.batch_seconds,
        ),
        first_token_delay_ms=args.first_token_delay_ms,
        event_delay_ms=args.event_delay_ms,
        compress=tuple(args.compress),
        compress_streams=args.compress_streams,
        fault_rates={
            "rate_limit": args.fault_rate_429,
            "overloaded": args.fault_rate_529,
            "server_error": args.fault_rate_500,
            "stream_error": args.fault_rate_stream_error,
            "drop": args.fault_rate_drop,
        },
    )
    # A deliberately dropped connection is logged by uvicorn as an application error: keep it quiet.
    logging.getLogger("uvicorn.error").addFilter(
        lambda record: "emulated connection drop" not in str(record.exc_info)
    )
    uvicorn.run(
        EmulatorApp(options),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        lifespan="on",
        timeout_keep_alive=30,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
