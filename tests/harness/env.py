"""Where things are, and whether this is CI."""

from __future__ import annotations

import os
import sys
from pathlib import Path

CAMPUSHUB = str(Path(sys.executable).parent / "campushub")
REPO = Path(__file__).parent.parent.parent
IN_CI = os.environ.get("CI") == "true"
