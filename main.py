"""imgsrv: ``python main.py`` serves the API; ``python main.py run ...`` processes a folder.

``app`` is the ASGI application, as in FastAPI projects: ``uvicorn main:app`` serves it, and
``from main import app; client = TestClient(app)`` works with or without ``with`` (without
the lifespan, the worker pool starts on the first request). Settings come from the
environment (``IMGSRV_*``).
"""
import sys

from app.cli import main


def __getattr__(name: str):
    # ``app`` is made on first access, so that ``python main.py run`` does not load the web stack.
    if name == "app":
        from app.api.app import create_app

        globals()["app"] = application = create_app()
        return application
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
