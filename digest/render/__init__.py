"""Rendering: the digest email (HTML + text), RSS/Atom feeds and the web archive.

Rendering is pure (data in, content out); `publish_site` is the one place that writes files, each
atomically.
"""

from digest.render.archive import archive_url, publish_site
from digest.render.email import EmailRenderer, Links
from digest.render.feeds import Day, private_feed_path, private_feed_url

__all__ = [
    "Day",
    "EmailRenderer",
    "Links",
    "archive_url",
    "private_feed_path",
    "private_feed_url",
    "publish_site",
]
