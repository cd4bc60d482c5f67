"""``python -m trainables <kind> [flags]``: one run without Ray (the kinds: ``trainables/kinds.py``)."""

import sys

from trainables.cli import main
from trainables.kinds import kinds

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in kinds():
        print(f"usage: python -m trainables {{{','.join(kinds())}}} [--help]", file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1], sys.argv[2:])
