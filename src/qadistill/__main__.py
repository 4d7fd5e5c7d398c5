"""`python -m qadistill ...`: the same as the `qadistill` command (handy under `accelerate launch -m qadistill`)."""

from qadistill.cli import main

if __name__ == "__main__":
    main()
