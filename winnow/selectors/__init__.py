"""Selection algorithms: AlpaGasus threshold, InsTag sampling + tag normalisation, DEITA.

Pure algorithms (table in, indices out): no engine, no model, no litellm (architecture.md
rule 5).  Public names are resolved lazily so ``import winnow.selectors`` stays cheap and
numpy is only imported by the function that needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from winnow.selectors.deita import DeitaResult, MultiHot, deita_score, deita_select, multi_hot
    from winnow.selectors.instag import InstagResult, instag_select
    from winnow.selectors.tags import TagNormalization, normalize_tags, rule_key
    from winnow.selectors.threshold import threshold_select, top_k_select

_WHERE = {
    "threshold_select": "threshold",
    "top_k_select": "threshold",
    "InstagResult": "instag",
    "instag_select": "instag",
    "DeitaResult": "deita",
    "MultiHot": "deita",
    "deita_score": "deita",
    "deita_select": "deita",
    "multi_hot": "deita",
    "TagNormalization": "tags",
    "normalize_tags": "tags",
    "rule_key": "tags",
}

__all__ = [
    "DeitaResult",
    "InstagResult",
    "MultiHot",
    "TagNormalization",
    "deita_score",
    "deita_select",
    "instag_select",
    "multi_hot",
    "normalize_tags",
    "rule_key",
    "threshold_select",
    "top_k_select",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"winnow.selectors.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'winnow.selectors' has no attribute {name!r}")
