"""Log lines carry no secret: structlog's (nested fields too) and every stdlib logger's.

Each case runs in a fresh interpreter: logging is configured once per process, as a
host or a driver does it, and what reaches the process's stderr is what is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_PRELUDE = """
import logging, os, sys
os.environ["SERVICE_DB_PASSWORD"] = "canary-db-pw-0451"
from mesh.observability._logging import configure_logging, get_logger
from mesh.security import remember_secret
remember_secret("canary-from-a-secrets-file-77")
configure_logging(fmt="json")
"""


def _stderr(body: str) -> str:
    script = _PRELUDE + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stderr


def test_structlog_fields_are_redacted_however_deep() -> None:
    err = _stderr(
        """
        get_logger().info(
            "calling",
            request={"headers": {"Authorization": "Basic Y2FuYXJ5OnB3"},
                     "url": "https://bot:canary-db-pw-0451@api.example.com/v1"},
            tries=["canary-from-a-secrets-file-77", ("ghp_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z0123",)],
            api_key="short",
            error=RuntimeError("refused glpat-Ab3dEf6hIj9kLm2nOp5q"),
        )
        """
    )
    line = json.loads(err.strip().splitlines()[-1])
    assert line["request"] == {
        "headers": {"Authorization": "[redacted]"},
        "url": "https://bot:[redacted]@api.example.com/v1",
    }
    assert line["tries"] == ["[redacted]", ["[redacted]"]]
    assert line["api_key"] == "[redacted]"
    assert line["error"] == "RuntimeError('refused [redacted]')"  # an object, as its repr


def test_every_stdlib_logger_is_redacted_whatever_its_handler() -> None:
    # Third-party loggers: one through the root's handler, one with a handler of its own
    # that does not propagate (as Ray's does), one added after logging was configured.
    err = _stderr(
        """
        logging.basicConfig(stream=sys.stderr, format="%(name)s %(message)s", level=logging.INFO)
        own = logging.getLogger("ray.fake")
        own.propagate = False
        own.addHandler(logging.StreamHandler(sys.stderr))
        logging.getLogger("openai").warning("retrying with key %s", "sk-proj-Ab3dEf6hIj9kLm2nOp5q")
        logging.getLogger("httpx").info("POST %s", "https://u:canary-db-pw-0451@h/v1")
        own.error("token %r", {"t": "canary-from-a-secrets-file-77"})
        try:
            raise RuntimeError("refused xoxb-1234567890-0987654321-Ab3dEf6hIj")
        except RuntimeError:
            logging.getLogger("late").exception("backend failed (canary-db-pw-0451)")
        logging.getLogger("late").info("done", stack_info=True)
        """
    )
    for canary in (
        "Ab3dEf6hIj9kLm2nOp5q",
        "canary-db-pw-0451",
        "canary-from-a-secrets-file-77",
        "0987654321-Ab3dEf6hIj",
    ):
        assert canary not in err
    assert "openai retrying with key [redacted]" in err
    assert "httpx POST https://u:[redacted]@h/v1" in err
    assert "token {'t': '[redacted]'}" in err
    assert "RuntimeError: refused [redacted]" in err  # the traceback, rendered by the handler
    assert "late done" in err
