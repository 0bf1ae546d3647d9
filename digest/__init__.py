"""digest: a daily research-paper digest (fetch, snapshot, diff, match, render, deliver)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("digest")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

USER_AGENT = f"digest/{__version__} (+https://github.com/digest-papers/digest)"
