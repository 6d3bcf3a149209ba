"""Secrets never shown: URL userinfo, signing tokens in query strings and Authorization headers become ***.

Applied to every error line (UserError), to what the steps print and record as metadata, and to the
CLI's run.log; the real URI is still what the download uses.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@host -> scheme://***@host (a bare user name is masked too: it may be a token)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s'\"]+@")
# ?X-Amz-Signature=…, &token=…, &sig=… (presigned S3/GCS URLs, SAS tokens, API keys)
_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|"
    r"x-goog-credential|signature|sig|token|access_token|id_token|api_key|apikey|key|password|secret)=)"
    r"[^&#\s'\"]+"
)
# Authorization: Bearer abc…, 'Authorization': 'Basic …', authorization=…
_AUTH_HEADER = re.compile(
    r"(?i)((?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)(?:(?:bearer|basic|token|aws4-hmac-sha256)\s+)?"
    r"[^'\"\s,}]+"
)


def redact(text: str) -> str:
    """`text` with every credential it carries replaced by ***."""
    if not text:
        return text
    text = _USERINFO.sub(rf"\1{MASK}@", text)
    text = _QUERY_SECRET.sub(rf"\1{MASK}", text)
    return _AUTH_HEADER.sub(rf"\1{MASK}", text)
