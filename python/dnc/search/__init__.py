"""dnc.search - the Derf paper's whole function-design search as a command:
screen a spec with `dnc search` (dnc's C search), then train the best
candidates as gamma * f(alpha x + s) + beta norms in a real model on Ray,
with successive halving over training steps and several seeds at the last
rung (docs/search.md, "Training the candidates").

    python -m dnc.search SPEC --task digits-vit -o DIR [--top 16]

dnc.search.tasks has the built-in tasks and the norm a candidate becomes;
dnc.search.cli the command (main(argv) -> exit status).
"""
from .cli import main, plan  # noqa: F401

__all__ = ["main", "plan"]
