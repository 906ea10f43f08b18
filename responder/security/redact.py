"""Mask secrets before anything is stored, audited, posted or logged: by key and by value.

By key: a value held under a secret-looking name (`token`, `password`, `api_key`, `accessToken`,
`Authorization`, `Cookie`, `private_key`, ... at any depth; camelCase counts) is replaced by
`***` whole, and so is a `SecretStr`.

By value: every string (and every dict key) is searched for the shapes secrets have wherever
they appear, and only the secret part is replaced (`VALUE_PATTERNS`, one documented set run with
the linear-time engine, so an attacker's text cannot make masking slow):

- PEM private keys (`-----BEGIN ... PRIVATE KEY-----` to its END line, or to the end of a
  text that was cut), JWTs (`eyJ...`.`eyJ...`.sig);
- URL userinfo (`https://user:pass@host` → `https://***@host`) and URL query values whose name
  says secret (`?token=`, `access_token=`, `sig=`, `signature=`, `X-Amz-Signature=`,
  `X-Amz-Credential=`, `X-Amz-Security-Token=`, `key=`, `code=`, `password=`, ...);
- `Authorization`, `Proxy-Authorization`, `Cookie` and `Set-Cookie` header values, `Bearer` /
  `Basic` credentials anywhere;
- GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`), Slack tokens
  (`xoxb-`, `xoxp-`, `xapp-`, ...) and Slack webhook paths, AWS session tokens, Hugging Face
  (`hf_`), OpenAI/Anthropic-style (`sk-...`), Stripe (`sk_live_`), GitLab (`glpat-`), npm
  (`npm_`) tokens, Google API keys (`AIza`) and OAuth access tokens (`ya29.`);
- `name: value` / `name=value` pairs in free text (an HTTP 500 body echoing
  `{"access_token": "..."}`) whose name looks secret, and the `input_value=` a pydantic
  validation error echoes for such a field.

Cost: a record's texts are searched once, joined, with the union of the patterns (`scrub`);
only a record where that finds something is masked text by text. A batch of records
(`scrub_each`) is copied by the compiled package where it is built (`responder_native`
`copy_masking_keys`, held to `_copy_masking_keys` by property tests), and searched once. A
lone surrogate (JSON's `\\ud800` escapes make them) becomes U+FFFD: UTF-8, which RE2 and
every store take, cannot carry it.

Learned secrets: a string masked *by key* is a known secret for the rest of the record it came
from (`secrets_in`), and a caller may carry such values on (the journal does, for the rest of a
run) so that the same value pasted into free text elsewhere (`"note: see {{ token }}"`) is
masked too (`known=`): values of at least `MIN_KNOWN_CHARS` characters, at most `MAX_KNOWN`.

AWS access key ids (`AKIA...`) are kept: AWS does not treat them as secret, and they are what a
credential incident is about (the key to deactivate, and to reactivate on undo). Their secret
keys are masked by key (`aws_secret_access_key`, `SecretAccessKey`) and in free text.

detect-secrets was considered: its plugins scan source lines and report findings rather than
spans to replace, and its entropy and keyword plugins would mask ordinary identifiers; the
patterns here are the part of that list that applies to values an incident responder handles.

Pure functions: the journal, the audit writers, the Slack adapter and the log processor call them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from functools import lru_cache
from typing import Any

from pydantic import SecretStr

from responder.security.patterns import compile_linear

try:
    import responder_native
except ImportError:  # not built: Python copies the records
    responder_native = None  # type: ignore[assignment]

REDACTED = "***"

_NAME_WORDS = (
    r"pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|authorization|credentials?"
    r"|cookies?|private[_-]?key"
)
SECRET_KEYS = re.compile(rf"(?:^|[_-])(?:{_NAME_WORDS}|set[_-]cookie)(?:$|[_-])", re.I)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
MAX_KEY_CHARS = 200  # longer keys are judged on their first 200 characters

# (pattern, replacement): `\1`, `\2` keep the parts around the secret
VALUE_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        r"(?s)-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
        r"-----BEGIN \1PRIVATE KEY-----" + REDACTED,
    ),
    (r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_.-]*", REDACTED),  # a JWT, or what is left of one
    (r"(?i)\b([a-z][a-z0-9+.-]{0,20}://)[^/\s@\"'<>]+@", r"\1" + REDACTED + "@"),
    (
        r"(?i)([?&;#](?:[a-z0-9_.-]*(?:token|signature|secret|passw(?:or)?d|pwd|api[_-]?key"
        r"|apikey|credential|session)[a-z0-9_.-]*|sig|key|code|auth)=)[^&#\s\"'<>]+",
        r"\1" + REDACTED,
    ),
    (
        r"(?i)\b((?:proxy-)?authorization|set-cookie|cookie)([\"']?\s*[:=]\s*[\"']?)[^\"'\r\n]+",
        r"\1\2" + REDACTED,
    ),
    (r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}", r"\1 " + REDACTED),
    (r"\b(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{30,255})", REDACTED),
    (r"\bxox[abposre]-[A-Za-z0-9-]{10,}|\bxapp-[0-9]+-[A-Za-z0-9-]{10,}", REDACTED),
    (r"(?i)(hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]+", r"\1" + REDACTED),
    (r"\b(?:FwoGZXIvYXdz|IQoJb3JpZ2lu)[A-Za-z0-9/+=]{20,}", REDACTED),
    (
        r"\b(?:hf_[A-Za-z0-9]{30,}|sk-[A-Za-z0-9_-]{20,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"
        r"|glpat-[A-Za-z0-9_-]{20,}|npm_[A-Za-z0-9]{36}|AIza[A-Za-z0-9_-]{35}"
        r"|ya29\.[A-Za-z0-9_-]{20,})",
        REDACTED,
    ),
    (  # pydantic's error text: the field on one line, `input_value=...` on the next
        rf"(?i)([A-Za-z0-9_.-]*(?:{_NAME_WORDS})[A-Za-z0-9_.\[\]-]*\n[^\n]*?input_value=)"
        r"[^\n]*?(, input_type=)",
        r"\1" + REDACTED + r"\2",
    ),
    (
        rf"(?i)([A-Za-z0-9_.-]*(?:{_NAME_WORDS})[A-Za-z0-9_.-]*)"
        r"([\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;<>{}\[\]]+)",
        r"\1\2" + REDACTED,
    ),
)
_MIN_SECRET_TEXT = 5  # `pwd=x`: no shorter text matches a pattern
MIN_KNOWN_CHARS = 8
MAX_KNOWN = 256


def _compiled() -> list[tuple[Any, str]]:
    return [(compile_linear(pattern), replacement) for pattern, replacement in VALUE_PATTERNS]


_VALUE_RES = _compiled()
_ANY = compile_linear("|".join(f"(?:{pattern})" for pattern, _ in VALUE_PATTERNS))
"""One search that says whether any pattern matches: most texts hold no secret. Built from the
patterns themselves, so it cannot miss what they match (a hand-kept list of literals did:
`hooks.slack.com/...` without a scheme, and `pa\u017fsword=`, which RE2 folds to `password=`)."""
_JOIN = "\n"
"""Between the texts of one record when they are searched at once: not a word character (so
`\\b` holds at a text's edges as it does alone) and no pattern needs it; a pattern that matches
within one text matches the joined texts too (the PEM pattern's `\\z` then matches at the end of
the joined texts), so a joined search that finds nothing proves every text clean."""


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether a value held under `key` is a secret (`api_key`, `accessToken`, `Set-Cookie`)."""
    key = key[:MAX_KEY_CHARS]
    return SECRET_KEYS.search(_CAMEL.sub("_", key)) is not None


def mask_text(text: str, known: Collection[str] = ()) -> str:
    """`text` with every secret-shaped part, and every `known` secret, replaced."""
    for secret in sorted(known, key=len, reverse=True) if known else ():
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = encodable(text)
    if len(text) < _MIN_SECRET_TEXT or _ANY.search(text) is None:
        return text
    return mask_every_pattern(text)


def mask_every_pattern(text: str) -> str:
    """`text` with every pattern of VALUE_PATTERNS applied in order: what masking by value
    means (`mask_text` and `scrub` skip the work when they can prove it changes nothing)."""
    text = encodable(text)
    for pattern, replacement in _VALUE_RES:
        text = pattern.sub(replacement, text)
    return text


_SURROGATES = re.compile("[\ud800-\udfff]")


def encodable(text: str) -> str:
    """`text` with each lone surrogate (JSON's `\\ud800` escapes make them; UTF-8 cannot
    carry them, and RE2, the logs and the databases take UTF-8) replaced by U+FFFD."""
    if text.isascii() or _SURROGATES.search(text) is None:
        return text
    return _SURROGATES.sub("\ufffd", text)


def scrub_value(key: str, value: Any, known: Collection[str] = ()) -> Any:
    """`value` with secrets masked at any depth (by key, then by value, then the `known`
    secrets); `key` is the name it is held under."""
    if isinstance(value, SecretStr) or (value is not None and is_secret_key(key)):
        return REDACTED
    if isinstance(value, str):
        return mask_text(value, known)
    if isinstance(value, dict):
        return {_mask_key(str(k), known): scrub_value(str(k), v, known) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(key, v, known) for v in value]
    return value


def _mask_key(key: str, known: Collection[str]) -> str:
    return mask_text(key, known) if known else _mask_plain_key(key)


@lru_cache(maxsize=4096)
def _mask_plain_key(key: str) -> str:
    """Keys repeat (`id`, `source`, `version`): mask each distinct one once."""
    return mask_text(key)


def scrub(data: dict[str, Any], known: Collection[str] = ()) -> dict[str, Any]:
    """A copy of `data` with secrets masked at any depth (for audit records and stored rows).

    Most records hold no secret: their keys are masked by name as `scrub_value` does, while
    their texts (values and keys) are searched once, joined, for every pattern and every
    `known` secret; only a record where that search finds something (or that holds a lone
    surrogate, see `encodable`) goes through `scrub_value` text by text. The result is the same
    either way (a property test compares them on random and hostile records)."""
    texts: list[str] = []
    copied = _copy_masking_keys("", data, texts)
    joined = _JOIN.join(texts)
    if (
        any(secret in joined for secret in known)
        or encodable(joined) is not joined
        or _ANY.search(joined) is not None
    ):
        return scrub_value("", data, known)  # type: ignore[no-any-return]
    return copied  # type: ignore[no-any-return]


def scrub_each(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """`scrub` of every record (no `known` secrets), with one search over all of their texts:
    the sink appends thousands of audit records a batch, and a search per record cost more in
    the call than in the scan. The texts of different records are joined as those of one are
    (`_JOIN`), so a search that finds nothing proves every record clean; when it finds
    something, each record is scrubbed on its own."""
    copies, joined = copy_masking_keys(records)
    if encodable(joined) is not joined or _ANY.search(joined) is not None:
        return [scrub(data) for data in records]
    return copies


def copy_masking_keys(records: Sequence[dict[str, Any]]) -> tuple[list[Any], str]:
    """`records` copied with every value under a secret-looking key masked, and all of their
    texts joined (`_JOIN`): compiled where built, else (or for data it does not take) by
    `_copy_masking_keys`."""
    if responder_native is not None and type(records) is list:
        copied = responder_native.copy_masking_keys(records, is_secret_key, SecretStr, REDACTED)
        if copied is not None:
            return copied
    texts: list[str] = []
    copies = [_copy_masking_keys("", data, texts) for data in records]
    return copies, _JOIN.join(texts)


def _copy_masking_keys(key: str, value: Any, texts: list[str]) -> Any:
    """`scrub_value` with every text kept as it is and gathered in `texts` (plain texts and
    numbers under a dict are handled in place: a call per value cost more than the rest)."""
    if isinstance(value, SecretStr) or (value is not None and is_secret_key(key)):
        return REDACTED
    if isinstance(value, dict):
        copied = {}
        for k, v in value.items():
            name = k if type(k) is str else str(k)
            texts.append(name)
            kind = type(v)
            if v is None or kind is int or kind is float or kind is bool:
                copied[name] = REDACTED if v is not None and is_secret_key(name) else v
            elif kind is str:
                if is_secret_key(name):
                    copied[name] = REDACTED
                else:
                    texts.append(v)
                    copied[name] = v
            else:
                copied[name] = _copy_masking_keys(name, v, texts)
        return copied
    if isinstance(value, str):
        texts.append(value)
        return value
    if isinstance(value, list | tuple):
        return [_copy_masking_keys(key, v, texts) for v in value]
    return value


def scrub_any(value: Any, known: Collection[str] = ()) -> Any:
    """`scrub_value` for a value held under no name (a step's output, an error text)."""
    return scrub_value("", value, known)


def secrets_in(value: Any, key: str = "") -> set[str]:
    """The strings `scrub_value` masks by key in `value` (at least MIN_KNOWN_CHARS long), to
    mask wherever they turn up later."""
    found: set[str] = set()
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        if is_secret_key(key) and len(value) >= MIN_KNOWN_CHARS:
            found.add(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            found |= secrets_in(v, key if is_secret_key(key) else str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            found |= secrets_in(v, key)
    return found


def remember(known: set[str], value: Any) -> None:
    """Add the secrets in `value` to `known`, keeping at most MAX_KNOWN (the longest first)."""
    known |= secrets_in(value)
    if len(known) > MAX_KNOWN:
        keep = sorted(known, key=len, reverse=True)[:MAX_KNOWN]
        known.clear()
        known.update(keep)
