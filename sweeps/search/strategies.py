"""The search strategies a sweep can run (``--scheduler``): each one object that builds its
searcher, its scheduler and its checkpoint rule, checks its flags, and says what ``sweep.json``,
the summary and the console record of it. A new strategy is one module here and one line in
``STRATEGIES``.
"""

from __future__ import annotations

from sweeps.request.settings import Settings
from sweeps.search.asha import ASHA
from sweeps.search.mo_asha import MOASHA
from sweeps.search.pb2 import PB2
from sweeps.search.pbt import PBT
from sweeps.search.strategy import Strategy

STRATEGIES: dict[str, Strategy] = {s.name: s for s in (ASHA(), MOASHA(), PBT(), PB2())}


def strategy_for(settings: Settings) -> Strategy:
    """The strategy ``--scheduler`` names (``sweeps/request/cli.py`` has checked the name)."""
    return STRATEGIES[settings.scheduler]


__all__ = ["STRATEGIES", "Strategy", "strategy_for"]
