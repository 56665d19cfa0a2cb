"""python -m dnc.search SPEC --task TASK -o DIR: docs/search.md."""
import sys

from .cli import main

sys.exit(main())
