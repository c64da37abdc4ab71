"""Secret redaction: keys never reach a log, span, error or answer.

One redactor for every exit of text: the values of the environment's secret variables
(names like ``*_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``, ``*PRIVATE*``,
``*_AUTH*``, ``*_CREDENTIALS``), every value read from a secrets file, and strings
shaped like a provider's key (OpenAI, Anthropic, Google, AWS, Hugging Face, GitHub,
GitLab, Stripe, Slack, JWTs, private key blocks, bearer tokens, Authorization headers)
or a password in a URL are replaced by `MASK`.

It runs on every log line and error text, so it is built for the clean case. The known
values and the shapes are compiled into two alternations: one of what every secret
must contain, anchored on characters rare in ordinary text (`_CANDIDATES`), and one
that masks (`_SHAPES`). A text shorter than any secret, or with no candidate, costs at
most that one search and is returned as it was (the same object); only a text with a
candidate is substituted. Both are rebuilt only when the set of known values changes.
The ``secrets`` chaos scenario measures it (``raymesh chaos --only secrets``): about 1.5 µs
for a clean 200-character line, 5.3 µs for one holding two keys, on a quiet machine here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = [
    "MASK",
    "REFERENCE_NAME",
    "URL_WITH_PASSWORD",
    "is_known_secret",
    "is_secret_name",
    "redact",
    "redact_data",
    "remember_secret",
]

#: What a secret is replaced by.
MASK: Final = "[redacted]"
#: Shorter values are not remembered as secrets: they would mask ordinary words.
_MIN_LENGTH = 8

# Environment variable names whose values are secrets.
_SECRET_VARIABLE: Final = re.compile(
    r"(_KEY|_TOKEN|_SECRET|_SECRETS|_PASSWORD|_PASSWD|_CREDENTIALS)$|PRIVATE|_AUTH", re.IGNORECASE
)
#: Names for where a secret is kept (a file, a path, a socket), not for the secret.
REFERENCE_NAME: Final = re.compile(r"_(FILE|PATH|DIR|SOCK)$", re.IGNORECASE)
# Fields of logged or recorded data whose values are secrets whatever they look like.
_SECRET_FIELD = re.compile(
    r"(^|[_.\-])(api_?key|token|secret|password|passwd|credentials?|authorization|"
    r"private_?key)$",
    re.IGNORECASE,
)


def _cased(first: str, rest: str, group: str) -> tuple[str, str]:
    """Two branches for either case of `first`, each starting with a literal character.

    `rest` closes the group the branch opens after `first`: the text kept unmasked.
    """
    return (f"{first.lower()}(?P<{group}l>{rest}", f"{first.upper()}(?P<{group}u>{rest}")


# scheme://user:PASSWORD@host (the user may be empty).
_URL_PASSWORD: Final = r"://[^\s:/@]*:[^\s@/]+@"
#: Finds a URL that carries a password.
URL_WITH_PASSWORD: Final = re.compile(_URL_PASSWORD)

# Key shapes, for the substitution. Each branch starts with a literal character, which
# lets the regex engine skip the positions no branch can start at. A match is masked
# whole, except the text up to the end of a named group (a URL's user, the
# ``aws_secret_access_key=`` before a key), which is kept.
_AWS_VALUE = r"[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"
_SHAPES: Final = (
    r"sk-[A-Za-z0-9_\-]{8,}",  # OpenAI (sk-, sk-proj-), Anthropic (sk-ant-)
    r"sk_(?:live|test)_[A-Za-z0-9]{10,}",  # Stripe secret keys
    r"rk_(?:live|test)_[A-Za-z0-9]{10,}",  # Stripe restricted keys
    r"AIza[0-9A-Za-z_\-]{30,}",  # Google API keys
    r"ya29\.[0-9A-Za-z_\-]{20,}",  # Google OAuth access tokens
    r"A(?<![A-Z0-9]A)(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}(?![A-Z0-9])",  # AWS access key ids
    r"hf_[A-Za-z0-9]{20,}",  # Hugging Face
    r"gh[pousr]_[A-Za-z0-9]{20,}",  # GitHub tokens
    r"github_pat_[A-Za-z0-9_]{20,}",  # GitHub fine-grained tokens
    r"glpat-[A-Za-z0-9_\-]{20,}",  # GitLab
    r"xox[abposr]-[A-Za-z0-9\-]{10,}",  # Slack
    r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JWTs
    r"-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z)",
    # AWS secret keys (40 characters, no prefix): known by the name before them.
    *_cased("a", r"(?i:ws_?secret_?(?:access_?)?key)" + _AWS_VALUE, "aws"),
    *_cased("s", r"(?i:ecret_?access_?key)" + _AWS_VALUE, "sak"),
    # A password in a URL: scheme://user:PASSWORD@host keeps all but the password.
    r":(?P<url>//[^\s:/@]*:)[^\s@/]+(?=@)",
    *_cased("b", r"(?i:earer)\s+)[A-Za-z0-9._~+/\-]{16,}=*", "bearer"),  # a bearer token
    # An Authorization header's credentials, whatever the scheme (Basic, Token, ...).
    *_cased("a", r"(?i:uthorization)[\"']?\s*[:=]\s*[\"']?[A-Za-z]+\s+)[^\s\"',;]{8,}", "authz"),
)
_KEEP: Final = ("awsl", "awsu", "sakl", "saku", "url", "bearerl", "beareru", "authzl", "authzu")

# What every match of `_SHAPES` contains, anchored on characters rare in clean text
# (the engine tries each position whose character can start a branch: ``s`` of ``sk-``
# would make it try a tenth of an English line): one search of it is the whole cost of
# a text with no secret. A unit test holds it to covering `_SHAPES`.
_CANDIDATES: Final = (
    r"-(?:(?<=sk-)|(?<=glpat-)|(?<=-----)|(?<=xox[abposr]-))",
    r"_(?:(?<=[sr]k_)|(?<=hf_)|(?<=gh[pousr]_)|(?<=_pat_))",
    r"A(?:Iza|KIA|SIA|BIA|CCA)",
    r"9\.(?<=ya29\.)",
    r"J(?<=eyJ)",
    r":(?:" + _URL_PASSWORD[1:] + r"|\s*[\"']?[A-Za-z0-9/+=]{40})",
    r"=\s*[\"']?[A-Za-z0-9/+=]{40}",
    r"B(?i:earer)\s",
    r"b(?i:earer)\s",
    r"z(?<=[Aa]uthoriz)(?i:ation)",
)


def _mask(match: re.Match[str]) -> str:
    for group in _KEEP:
        if match.group(group) is not None:
            return match.string[match.start() : match.end(group)] + MASK
    return MASK


_REMEMBERED: set[str] = set()


def remember_secret(value: str) -> None:
    """Redact `value` wherever it turns up from now on (e.g. a key read from a secrets file)."""
    if len(value) >= _MIN_LENGTH:
        _REMEMBERED.add(value)


def is_secret_name(name: str) -> bool:
    """Return True when an environment variable named `name` holds a secret.

    ``*_KEY``, ``*_TOKEN``, ``*_SECRET(S)``, ``*_PASSWORD``, ``*_CREDENTIALS``, and any
    name with ``PRIVATE`` or ``_AUTH`` in it; not a name for where one is kept
    (``*_FILE``, ``*_PATH``, ``*_DIR``, ``*_SOCK``).
    """
    return bool(_SECRET_VARIABLE.search(name)) and not REFERENCE_NAME.search(name)


def _worth_masking(value: str) -> bool:
    # A setting's word ("disabled", "required") would mask that word everywhere.
    return len(value) >= _MIN_LENGTH and not (value.isalpha() and len(value) <= 12)


class _Redactor:
    """The known secrets and the patterns that find them and the key shapes.

    The environment is read again only when the number of its variables or of the
    remembered values changes, or one of the secret variables is set anew, which an
    identity check per secret variable on `os.environ`'s own dict tells (a lookup
    through `os.environ` decodes the value: three of them cost more than the search).
    """

    def __init__(self) -> None:
        self._size = -1
        self._remembered = -1
        self._raw: list[tuple[Any, Any]] = []
        self._known: frozenset[str] = frozenset()
        self.patterns = _compile(())

    def current(self) -> tuple[re.Pattern[str], re.Pattern[str]]:
        """Return the (candidates, substitution) patterns for the secrets known now."""
        if len(_ENVIRON) != self._size or len(_REMEMBERED) != self._remembered:
            self._reload()
        else:
            for key, value in self._raw:
                if _ENVIRON.get(key) is not value:
                    self._reload()
                    break
        return self.patterns

    def known(self) -> frozenset[str]:
        """Return the secret values known now."""
        self.current()
        return self._known

    def _reload(self) -> None:
        self._size, self._remembered = len(_ENVIRON), len(_REMEMBERED)
        names = [k for k in os.environ if is_secret_name(k)]
        self._raw = [(key, _ENVIRON.get(key)) for key in map(os.environ.encodekey, names)]
        values = {os.environ[k] for k in names if k in os.environ}
        known = frozenset({v for v in values if _worth_masking(v)} | _REMEMBERED)
        if known != self._known:
            self._known = known
            self.patterns = _compile(known)


#: `os.environ`'s own dict (encoded keys and values), which every change goes through.
_ENVIRON: dict[Any, Any] = os.environ._data  # type: ignore[attr-defined]


def _compile(known: Iterable[str]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    shapes = re.compile("|".join(_SHAPES))
    # Values the shapes mask whole need no branch of their own. Longest first: a
    # secret that contains another is masked whole.
    values = sorted((v for v in known if not shapes.fullmatch(v)), key=len, reverse=True)
    candidates = [*map(_anchored, values), *_CANDIDATES]
    literals = [re.escape(v) for v in values]
    return re.compile("|".join(candidates)), re.compile("|".join([*literals, *_SHAPES]))


# Characters by how often they appear in log lines and error texts, most often first.
_COMMON = " etaoinsrhldcum0123456789fpg.,:=-_/'\"wybvkTASECRIONLDPMHGBUFWYVK"


def _anchored(value: str) -> str:
    """`value` as a branch that starts at its rarest character (a lookbehind checks the rest).

    The regex engine tries a branch only where its first character is: a key starting
    with ``e`` would make it try every ``e`` of a text.
    """
    at = max(range(len(value)), key=lambda i: _COMMON.find(value[i]) % (len(_COMMON) + 1))
    head, tail = value[: at + 1], value[at + 1 :]
    return f"{re.escape(value[at])}(?<={re.escape(head)}){re.escape(tail)}"


_redactor = _Redactor()


def is_known_secret(value: str) -> bool:
    """Return True when `value` is a key this process knows (its environment's, or remembered)."""
    return value in _redactor.known()


def redact(text: str) -> str:
    """Return `text` with every known secret, key-shaped string and URL password masked."""
    if len(text) < _MIN_LENGTH:
        return text
    candidates, shapes = _redactor.current()
    if candidates.search(text) is None:
        return text
    return shapes.sub(_mask, text)


def redact_data(data: Any) -> Any:
    """Return `data` with secrets masked in every string, however deeply nested.

    Dicts, lists and tuples are copied where something changed; under a field named like
    a secret (``api_key``, ``password``, ``Authorization``, ...) a string is masked
    whatever it looks like. Other values are returned as they are.
    """
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, Mapping):
        return {key: _field(key, value) for key, value in data.items()}
    if isinstance(data, list):
        return [redact_data(item) for item in data]
    if isinstance(data, tuple):
        return tuple(redact_data(item) for item in data)
    return data


def _field(key: Any, value: Any) -> Any:
    if isinstance(value, str) and value and isinstance(key, str) and _SECRET_FIELD.search(key):
        return MASK
    return redact_data(value)
