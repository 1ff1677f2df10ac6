"""Parse the share text that short-video / e-commerce apps put on the clipboard.

Users paste either a bare link or the whole blurb (口令 + title + #tags + link + "复制打开…"); this
module pulls out the link, its platform, the hashtags and the title. Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus, urlsplit

from bot.rules.platforms import canonical_platform, platform_of_host


@dataclass(frozen=True)
class SharedVideo:
    url: str  # normalise_url() form
    platform: str | None  # platform_of_host() of the url
    hashtags: tuple[str, ...]  # without '#', in order, deduplicated
    title: str | None  # first 【】/「」 text that isn't just an app name


# RFC 3986 characters only: share links are ASCII, and apps glue CJK text / full-width
# punctuation / emoji straight onto them, so any non-ASCII character ends a URL.
_URL_CHARS = r"A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%"
_HTTP_URL_RE = re.compile(rf"(?i:https?)://[{_URL_CHARS}]+")
# 'v.douyin.com/xxx/' without a scheme; must not start mid-token (e.g. inside another URL).
_BARE_URL_RE = re.compile(rf"(?<![{_URL_CHARS}])([A-Za-z0-9.\-]+)/[{_URL_CHARS}]*")
_UNSAFE_PREFIX_RE = re.compile(r"(?i)(?:javascript|vbscript|data):\s*$")
_TRAILING_PUNCT = ".,;:!?'*"
_HOST_RE = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")

# Short links are identified by their (case-sensitive) path alone; any query is share tracking.
_SHORT_LINK_HOSTS = frozenset(
    {"v.douyin.com", "v.kuaishou.com", "xhslink.com", "b23.tv", "m.tb.cn", "3.cn"}
)
_TRACKING_PREFIXES = ("utm_", "share_", "spm", "xsec_")
_TRACKING_PARAMS = frozenset(
    {
        "from", "from_source", "from_spmid", "timestamp", "ts", "sharer", "tt_from", "u_code",
        "did", "iid", "vd_source", "unique_k", "bbid", "is_story_h5", "appuid", "apptime",
        "author_share", "shareredid", "ttclid", "gclid", "fbclid", "scm", "ut_sk", "sp_tk", "tk",
        "wxsign", "wxfid", "sourcetype", "suid", "bxsign", "tbsocialpopkey", "short_name",
        "shareurl", "enter_from", "previous_page", "checksum", "schema_type", "webid",
        "isappinstalled", "ttid",
    }
)  # fmt: skip

# '#' not preceded by '&' (HTML entities like &#39;). \w covers letters, digits, CJK and '_';
# a tag ends at anything else: whitespace, the next '#', Douyin's closing '#', punctuation.
_HASHTAG_RE = re.compile(r"(?<!&)#(\w+)")
_MAX_TAG_LEN = 30

_TITLE_RE = re.compile(r"【([^【】]*)】|「([^「」]*)」")
# B站 titles come as '标题-哔哩哔哩' / '标题_哔哩哔哩_bilibili'; the suffix is app boilerplate.
_BILI_SUFFIX_RE = re.compile(r"(?i)(?:[\s_\-|–—]*(?:哔哩哔哩|bilibili))+\s*$")
_APP_WORDS = frozenset({"app", "淘宝网", "京东app", "抖音app", "快手app", "小红书app"})


def _trim(candidate: str) -> str:
    """Drop trailing sentence punctuation, and ')' / ']' that close something outside the URL."""
    pairs = {")": "(", "]": "["}
    while candidate:
        last = candidate[-1]
        unbalanced = last in pairs and candidate.count(pairs[last]) < candidate.count(last)
        if last not in _TRAILING_PUNCT and not unbalanced:
            break
        candidate = candidate[:-1]
    return candidate


def _host_of(url: str) -> str | None:
    """Lower-case host when `url` has a plausible DNS host (and a valid port), else None."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a junk port
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".")
    return host if _HOST_RE.match(host) else None


def _find_urls(text: str) -> list[tuple[int, int, str]]:
    """(start, end, url) for every URL in `text`, in order; bare platform links get https://."""
    found: list[tuple[int, int, str]] = []
    for m in _HTTP_URL_RE.finditer(text):
        # Only the few characters before the match matter; keeps this linear on long text.
        if _UNSAFE_PREFIX_RE.search(text[max(0, m.start() - 32) : m.start()]):
            continue
        url = _trim(m.group())
        if _host_of(url) is not None:
            found.append((m.start(), m.start() + len(url), url))
    for m in _BARE_URL_RE.finditer(text):
        if any(s <= m.start() < e for s, e, _ in found):
            continue
        token = _trim(m.group())
        host = _host_of("https://" + token)
        if len(token) > len(m.group(1)) + 1 and host and platform_of_host(host):
            found.append((m.start(), m.start() + len(token), "https://" + token))
    found.sort()
    return found


def extract_urls(text: str) -> list[str]:
    """All http(s) URLs in `text` in order of appearance (duplicates kept).

    Scheme-less links are only taken for known platform hosts and come back with https://.
    """
    return [url for _, _, url in _find_urls(text)]


def normalise_url(url: str) -> str:
    """Stable key for a share link: https, lower-case host, no fragment/tracking/default port.

    Strings that aren't http(s) URLs come back stripped but otherwise unchanged; never raises.
    """
    s = url.strip()
    if s.startswith("//"):
        s = "https:" + s
    elif not re.match(r"(?i)https?://", s):
        if not re.match(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?::\d+)?(?:[/?#]|$)", s):
            return s
        s = "https://" + s
    try:
        parts = urlsplit(s)
        port = parts.port
    except ValueError:
        return s
    host = (parts.hostname or "").rstrip(".")
    if not host or re.search(r"\s", host):
        return s
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port not in (80, 443):
        netloc += f":{port}"

    path = re.sub(r"/{2,}", "/", _quote_spaces(parts.path))
    if host in _SHORT_LINK_HOSTS:
        return f"https://{netloc}{path.rstrip('/')}"
    if path == "/":
        path = ""

    kept = [
        p
        for p in _quote_spaces(parts.query).split("&")
        if p and not _is_tracking(p.split("=", 1)[0])
    ]
    # Sorted so that parameter order in different shares of the same content doesn't matter.
    kept.sort(key=lambda p: unquote_plus(p.split("=", 1)[0]).lower())
    query = "?" + "&".join(kept) if kept else ""
    return f"https://{netloc}{path}{query}"


def _quote_spaces(part: str) -> str:
    # Percent-encode whitespace as browsers do; a raw trailing space would be lost on re-parse.
    return re.sub(r"\s", lambda m: quote(m.group()), part)


def _is_tracking(raw_key: str) -> bool:
    key = unquote_plus(raw_key).strip().lower()
    return key in _TRACKING_PARAMS or key.startswith(_TRACKING_PREFIXES)


def _tag_key(tag: str) -> str:
    return "".join(unicodedata.normalize("NFKC", tag).casefold().split())


def extract_hashtags(text: str) -> tuple[str, ...]:
    """Hashtags without '#', in order, deduplicated (case-insensitively, first spelling wins).

    Handles Douyin '#tag#', Kuaishou '#tag ' and full-width '＃'; '#' inside URLs isn't a tag.
    """
    pieces: list[str] = []
    pos = 0
    for start, end, _ in _find_urls(text):
        pieces.append(text[pos:start])
        pos = end
    pieces.append(text[pos:])
    # NFKC after cutting URLs out: it turns '＃' into '#' but would shift the URL offsets.
    cleaned = unicodedata.normalize("NFKC", " ".join(pieces))

    tags: list[str] = []
    seen: set[str] = set()
    for m in _HASHTAG_RE.finditer(cleaned):
        tag = m.group(1)
        key = _tag_key(tag)
        # Longer runs are glued prose, not a tag; dropping beats inventing a truncated tag.
        if len(tag) <= _MAX_TAG_LEN and key not in seen:
            seen.add(key)
            tags.append(tag)
    return tuple(tags)


def _is_app_name(text: str) -> bool:
    return canonical_platform(text) is not None or _tag_key(text) in _APP_WORDS


def _extract_title(text: str) -> str | None:
    for m in _TITLE_RE.finditer(text):
        inner = (m.group(1) if m.group(1) is not None else m.group(2)).strip()
        if not inner or _is_app_name(inner):
            continue
        title = _BILI_SUFFIX_RE.sub("", inner).strip()
        if title and not _is_app_name(title):
            return title
    return None


def parse_share_text(text: str) -> SharedVideo | None:
    """Parse a pasted share text or bare link; None when it holds no URL at all."""
    urls = extract_urls(text)
    if not urls:
        return None
    # Prefer a platform link: share texts sometimes also carry an unrelated link.
    chosen = next((u for u in urls if platform_of_host(_host_of(u) or "")), urls[0])
    url = normalise_url(chosen)
    return SharedVideo(
        url=url,
        platform=platform_of_host(_host_of(url) or ""),
        hashtags=extract_hashtags(text),
        title=_extract_title(text),
    )


def has_required_hashtag(text: str, required: Iterable[str]) -> bool:
    """True if any of `required` (with or without '#'/'＃') is a hashtag in `text`.

    Exact tag equality after NFKC, case-folding and removing spaces: campaigns list every
    accepted spelling, so there is deliberately no fuzzy matching.
    """
    if isinstance(required, str):  # a lone tag would otherwise be iterated char by char
        required = (required,)
    present = {_tag_key(t) for t in extract_hashtags(text)}
    for tag in required:
        key = _tag_key(tag).strip("#")
        if key and key in present:
            return True
    return False
