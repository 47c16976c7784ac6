"""The one YAML reader of the product's data files: libyaml's safe loader when PyYAML has it.

Device knowledge is data (profiles, the check catalog, the report strings): 29 files read at every
start. PyYAML's pure-Python safe loader took about 0.4 s of each run for them; libyaml's
(``CSafeLoader``, the same safe constructors: plain data, no Python objects) takes a tenth of that.
Where PyYAML was built without libyaml, the pure-Python loader reads the same documents.
"""

from __future__ import annotations

from typing import Any

import yaml

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """The document in ``text`` as plain data (dicts, lists, strings, numbers, booleans, None)."""
    return yaml.load(text, Loader=_LOADER)
