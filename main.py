"""imgsrv: ``python main.py`` serves the API; ``python main.py run ...`` processes a folder."""
import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
