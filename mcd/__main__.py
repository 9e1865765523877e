"""`python -m mcd <command>` is the same as the `mcd` console script."""
from mcd.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
