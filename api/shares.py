"""Share links (CONTRACT section 9): a signed, expiring, revocable link that opens one run's
or one batch's report (HTML and Excel) in a browser without a key, and nothing else.

The link's token is ``itsdangerous``-signed (HMAC-SHA256 with the server's share secret)
data naming the link's id, what it opens and its expiry. A token is accepted only when the
signature holds, it has not expired, and its row in the ``shares`` table exists, is not
revoked and says the same thing: so a link can be revoked, and deleting what it opens ends it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from itsdangerous import BadSignature, URLSafeSerializer

SALT = "optimizer.share-link.v1"
SECRET_NAME = "share_links"


def new_secret() -> str:
    return secrets.token_urlsafe(48)


@dataclass(frozen=True)
class Grant:
    """What a verified token opens."""

    share_id: str
    kind: str  # "run" or "batch"
    target: str
    expires: datetime


class InvalidLink(Exception):
    """The token is not one this server signed (tampered, truncated, another server's)."""


class Signer:
    def __init__(self, secret: str) -> None:
        self._s = URLSafeSerializer(secret, salt=SALT)

    def token(self, share_id: str, kind: str, target: str, expires: datetime) -> str:
        return self._s.dumps({"i": share_id, "k": kind, "t": target,
                              "e": int(expires.timestamp())})

    def verify(self, token: str) -> Grant:
        """The grant a token carries (expiry not yet checked); :class:`InvalidLink` if the
        signature does not hold."""
        try:
            data = self._s.loads(token)
            return Grant(str(data["i"]), str(data["k"]), str(data["t"]),
                         datetime.fromtimestamp(int(data["e"]), UTC))
        except (BadSignature, KeyError, TypeError, ValueError, OverflowError):
            raise InvalidLink() from None
