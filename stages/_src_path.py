"""Put this checkout's ``src`` first on ``sys.path``; every stage script imports this module
(``import _src_path``) before ``ames``.

A queued ``dvc exp run`` executes a copy of the repository: its stages must run the ``ames``
package of that copy, not whichever checkout an editable install points at. Python puts a
script's own folder first on ``sys.path``, so ``python stages/<name>.py`` finds this file.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
