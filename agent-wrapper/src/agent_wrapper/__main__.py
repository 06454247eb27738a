"""Command line entry point: ``python -m agent_wrapper`` / ``agent-wrapper``."""

import argparse
import logging
import os
import sys

from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    from agent_wrapper.core.config import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        # Fail fast with the reason (e.g. openai provider without base URL/model), but
        # never with the values given: pydantic's own text quotes the inputs, and for a
        # model-level check that is every setting, the API key included.
        reasons = "\n".join(
            f"  {'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False))
        print(f"agent-wrapper: invalid configuration:\n{reasons}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="agent-wrapper", description=__doc__)
    parser.add_argument("--host", default=settings.host,
                        help="bind address (env AGENT_WRAPPER_HOST)")
    parser.add_argument("--port", type=int, default=settings.port,
                        help="port (env AGENT_WRAPPER_PORT)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvicorn

    from agent_wrapper.core.errors import RegistryError
    from agent_wrapper.server import guarded_protocol

    common = {"host": args.host, "port": args.port, "log_level": "info",
              "limit_concurrency": settings.max_connections,
              "timeout_keep_alive": settings.keep_alive_s}
    workers = settings.worker_count()
    if workers > 1:
        # N processes accept on the one socket uvicorn binds here; each builds its own
        # app (store connections, run slots, queue dispatcher) from the environment.
        # What would stop every worker fails here first, once, with exit code 2.
        from agent_wrapper import telemetry
        from agent_wrapper.agents import load_registry

        try:
            telemetry.check_configuration()
            settings.host_secret()
            load_registry(settings.agents_file)
        except (RegistryError, ValueError) as exc:
            print(f"agent-wrapper: {exc}", file=sys.stderr)
            return 2
        logging.getLogger("agent_wrapper").info("starting %d worker processes", workers)
        os.environ["AGENT_WRAPPER_SUPERVISOR_PID"] = str(os.getpid())  # see main.worker_app
        uvicorn.run("agent_wrapper.main:worker_app", factory=True, workers=workers,
                    http="agent_wrapper.server:EnvGuardedH11Protocol", **common)
        return 0

    from agent_wrapper.main import create_app

    try:
        app = create_app(settings)
    except (RegistryError, ValueError) as exc:  # a broken registry, OTEL_* settings
        print(f"agent-wrapper: {exc}", file=sys.stderr)
        return 2
    # Connections are bounded (more get 503), each request head has a deadline, and
    # idle keep-alive connections close after a few seconds.
    uvicorn.run(app, http=guarded_protocol(settings.header_timeout_s), **common)
    return 0


if __name__ == "__main__":
    sys.exit(main())
