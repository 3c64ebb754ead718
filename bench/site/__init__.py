"""The leaderboard website: static pages built from board folders (rendering stays out of the core).

``build_site(boards, out)`` is what ``bench leaderboard site`` calls; ``data`` computes what the
pages show from the records alone, ``render`` writes them with Jinja2 and the vendored scripts.
"""

from bench.site.render import build_site

__all__ = ["build_site"]
