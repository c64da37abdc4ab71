"""What agent packages (``actors``, or a user's own) may use of the runtime beyond `mesh`.

An agent that calls a model counts the call on its host's stats and span, records span
events, redacts what it shows (text with `redact`, nested data with `redact_data`) and
reads its keys the way the runtime does, and keeps files (a response cache) under the
raymesh home, readable by its owner only. These names are the runtime's promise to such
packages; everything else in ``mesh`` is internal.
"""

from mesh.config import raymesh_home
from mesh.observability import add_event, add_to, count_model_call
from mesh.security import get_secret, private_dir, private_file, redact, redact_data

__all__ = [
    "add_event",
    "add_to",
    "count_model_call",
    "get_secret",
    "private_dir",
    "private_file",
    "raymesh_home",
    "redact",
    "redact_data",
]
