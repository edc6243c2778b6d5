"""``data-platform serve``: uvicorn (uvloop, httptools) with one or several worker processes."""

from __future__ import annotations

import os
import shutil
import tempfile

from data_platform.serving.metrics import MULTIPROC_ENV


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "warning") -> int:
    import uvicorn

    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    owned_dir = None
    if workers > 1 and not os.environ.get(MULTIPROC_ENV):
        # Each worker writes its metric samples here; /metrics in any worker adds all up.
        owned_dir = tempfile.mkdtemp(prefix="dp-serving-metrics-")
        os.environ[MULTIPROC_ENV] = owned_dir
    print(f"recommendation service on http://{host}:{port} ({workers} worker(s))", flush=True)
    try:
        uvicorn.run(
            "data_platform.serving.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_level=log_level,
        )
    finally:
        if owned_dir is not None:
            shutil.rmtree(owned_dir, ignore_errors=True)
    return 0
