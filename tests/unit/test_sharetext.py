"""bot.rules.sharetext: parsing pasted share texts from the apps."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.rules.sharetext import (
    SharedVideo,
    extract_hashtags,
    extract_urls,
    has_required_hashtag,
    normalise_url,
    parse_share_text,
)

DOUYIN = (
    "7.43 复制打开抖音，看看【某某的作品】#我在利通带好货# 利通美食... "
    "https://v.douyin.com/iRNBho6u/ Slp:/ 09/21 L@w.FH"
)
KUAISHOU = (
    'https://v.kuaishou.com/Jxxxxx 利通探店 #我在利通带好货 "某某"的作品 '
    "复制此消息，打开【快手】直接观看！"
)
XHS = (
    "【探店】利通美食 | 某某的笔记 ... http://xhslink.com/a/AbCd12345 "
    "复制本条信息，打开【小红书】App查看精彩内容！"
)

EXAMPLES: list[tuple[str, SharedVideo]] = [
    (
        DOUYIN,
        SharedVideo("https://v.douyin.com/iRNBho6u", "抖音", ("我在利通带好货",), "某某的作品"),
    ),
    (KUAISHOU, SharedVideo("https://v.kuaishou.com/Jxxxxx", "快手", ("我在利通带好货",), None)),
    (XHS, SharedVideo("https://xhslink.com/a/AbCd12345", "小红书", (), "探店")),
    (
        "【利通美食探店-哔哩哔哩】 https://b23.tv/AbCdEf",
        SharedVideo("https://b23.tv/AbCdEf", "B站", (), "利通美食探店"),
    ),
    (
        "【淘宝】https://m.tb.cn/h.5abcd?tk=xyz 「宝贝标题」点击链接直接打开",
        SharedVideo("https://m.tb.cn/h.5abcd", "淘宝", (), "宝贝标题"),
    ),
    ("https://3.cn/10-abcdEF 「京东」...", SharedVideo("https://3.cn/10-abcdEF", "京东", (), None)),
    (
        "https://channels.weixin.qq.com/web/pages/feed?eid=abc&share_id=9#top",
        SharedVideo("https://channels.weixin.qq.com/web/pages/feed?eid=abc", "视频号", (), None),
    ),
    (
        "视频号：https://weixin.qq.com/sph/AbCd，＃我在利通带好货＃",
        SharedVideo("https://weixin.qq.com/sph/AbCd", "视频号", ("我在利通带好货",), None),
    ),
    # Bare URL, and a scheme-less link glued to CJK text.
    (
        "https://v.douyin.com/iRNBho6u/",
        SharedVideo("https://v.douyin.com/iRNBho6u", "抖音", (), None),
    ),
    (
        "复制v.douyin.com/iRNBho6u/打开",
        SharedVideo("https://v.douyin.com/iRNBho6u", "抖音", (), None),
    ),
    # A known-platform link wins over an earlier unrelated one.
    (
        "详情 https://example.com/x 视频 https://b23.tv/AbC",
        SharedVideo("https://b23.tv/AbC", "B站", (), None),
    ),
    ("看 https://example.com/a/ 吧", SharedVideo("https://example.com/a/", None, (), None)),
]


@pytest.mark.parametrize(("text", "expected"), EXAMPLES)
def test_parse_share_text_examples(text: str, expected: SharedVideo) -> None:
    assert parse_share_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "没有链接 #我在利通带好货#",
        "http://",
        "https://",
        "http://，看看",
        "https:// v.douyin.com",
        "javascript:alert(1)",
        "javascript:alert('x')//v.douyin.com/abc/",
        "JavaScript:https://evil.com/x",
        "ftp://v.douyin.com/abc/",
        "douyin.com",  # a bare domain without a path is just a word
        "v.douyin.com/",
        "https://localhost/x",
        "https://v.douyin.com:99999/x",
        "😀🔥 #标签# 😀",
    ],
)
def test_parse_share_text_without_usable_url(text: str) -> None:
    assert extract_urls(text) == []
    assert parse_share_text(text) is None


URLS: list[tuple[str, list[str]]] = [
    ("看看https://v.douyin.com/abc/，好看", ["https://v.douyin.com/abc/"]),
    ("链接：https://b23.tv/x。", ["https://b23.tv/x"]),
    ("(see https://x.com/a).", ["https://x.com/a"]),
    ("https://x.com/wiki/A_(b)", ["https://x.com/wiki/A_(b)"]),
    ("https://x.com/a, https://y.com/b!", ["https://x.com/a", "https://y.com/b"]),
    ("https://x.com/a】「https://y.com/b」", ["https://x.com/a", "https://y.com/b"]),
    ("“https://x.com/q?a=1”", ["https://x.com/q?a=1"]),
    ("🔥https://v.douyin.com/e/🔥", ["https://v.douyin.com/e/"]),
    ("HTTPS://V.DOUYIN.COM/Ab", ["HTTPS://V.DOUYIN.COM/Ab"]),
    ("a https://x.com/1 b https://x.com/1", ["https://x.com/1", "https://x.com/1"]),
    # Scheme-less only for platform hosts, and never from inside another URL.
    ("xhslink.com/a/Q1 和 example.com/a", ["https://xhslink.com/a/Q1"]),
    ("https://x.com/?u=v.douyin.com/abc", ["https://x.com/?u=v.douyin.com/abc"]),
    ("evil-douyin.com/abc", []),
]


@pytest.mark.parametrize(("text", "expected"), URLS)
def test_extract_urls(text: str, expected: list[str]) -> None:
    assert extract_urls(text) == expected


NORMALISED: list[tuple[str, str]] = [
    ("https://v.douyin.com/iRNBho6u/", "https://v.douyin.com/iRNBho6u"),
    ("http://V.DOUYIN.COM/iRNBho6u", "https://v.douyin.com/iRNBho6u"),
    ("http://v.douyin.com:80//iRNBho6u//?utm_source=x#frag", "https://v.douyin.com/iRNBho6u"),
    ("v.douyin.com/iRNBho6u/", "https://v.douyin.com/iRNBho6u"),
    ("https://m.tb.cn/h.5abcd?tk=xyz", "https://m.tb.cn/h.5abcd"),
    ("https://xhslink.com/a/AbCd12345?share_id=1", "https://xhslink.com/a/AbCd12345"),
    (
        "https://item.taobao.com/item.htm?spm=a1.b2&id=123&utm_medium=x#detail",
        "https://item.taobao.com/item.htm?id=123",
    ),
    ("https://item.jd.com/100.html?from=share&did=1", "https://item.jd.com/100.html"),
    (
        "https://item.m.jd.com/product/1.html?id=9&sid=2",
        "https://item.m.jd.com/product/1.html?id=9&sid=2",
    ),
    (
        "https://www.bilibili.com/video/BV1x?p=2&spm_id_from=333&vd_source=ab",
        "https://www.bilibili.com/video/BV1x?p=2",
    ),
    (
        "https://www.youtube.com/watch?v=abc&t=10&utm_campaign=z",
        "https://www.youtube.com/watch?t=10&v=abc",
    ),
    (
        "https://www.xiaohongshu.com/explore/64ab?xsec_source=pc_share&xsec_token=AB",
        "https://www.xiaohongshu.com/explore/64ab",
    ),
    (
        "https://www.douyin.com/video/7?previous_page=app_code_link&u_code=x&iid=1",
        "https://www.douyin.com/video/7",
    ),
    ("https://Example.COM:8443/a//b/", "https://example.com:8443/a/b/"),
    ("https://example.com:443/", "https://example.com"),
    ("https://user:pw@example.com/x", "https://example.com/x"),
    ("  https://example.com/x  ", "https://example.com/x"),
    ("https://example.com/a b?q=c d#e f", "https://example.com/a%20b?q=c%20d"),
    ("https:// :", "https:// :"),  # no host: left alone, never raises
    ("javascript:alert(1)", "javascript:alert(1)"),
    ("not a url", "not a url"),
]


@pytest.mark.parametrize(("url", "expected"), NORMALISED)
def test_normalise_url(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


HASHTAGS: list[tuple[str, tuple[str, ...]]] = [
    ("#我在利通带好货#", ("我在利通带好货",)),
    ("#我在利通带好货 利通探店", ("我在利通带好货",)),
    ("＃我在利通带好货＃", ("我在利通带好货",)),
    ("美食#江西味道", ("江西味道",)),
    ("#a#b #c# #a", ("a", "b", "c")),
    ("#利通美食🍜真香", ("利通美食",)),
    ("#我在利通带好货，快来", ("我在利通带好货",)),
    ("#Tag_1 #tag_1", ("Tag_1",)),
    ("# # ## #！", ()),
    ("#" + "长" * 30, ("长" * 30,)),
    ("#" + "长" * 31, ()),  # glued prose, not a tag
    ("&#39;引号&#39;", ()),
    ("https://www.bilibili.com/video/BV1#reply #真标签", ("真标签",)),
    ("", ()),
]


@pytest.mark.parametrize(("text", "expected"), HASHTAGS)
def test_extract_hashtags(text: str, expected: tuple[str, ...]) -> None:
    assert extract_hashtags(text) == expected


REQUIRED = ("#我在利通带好货#", "#我在利通区带好货#")


@pytest.mark.parametrize(
    ("text", "required", "expected"),
    [
        ("#我在利通带好货 好吃", REQUIRED, True),
        ("＃我在利通带好货＃", REQUIRED, True),
        ("#我在利通区带好货#", REQUIRED, True),
        (DOUYIN, REQUIRED, True),
        (KUAISHOU, ["我在利通带好货"], True),
        ("#我在利通带好货", "#我在利通带好货#", True),  # a lone str is one tag, not its chars
        ("#Abc", ["＃ａｂｃ"], True),
        ("#我在利通带好货", ["# 我在 利通带好货 #"], True),
        ("我在利通带好货", REQUIRED, False),  # mentioned, not tagged
        ("#我在利通带", REQUIRED, False),  # no fuzzy/prefix matching
        ("#我在利通带好货了", REQUIRED, False),
        ("#我在利通带好货", [], False),
        ("#我在利通带好货", ["", "#", "＃＃"], False),
        ("", REQUIRED, False),
    ],
)
def test_has_required_hashtag(text: str, required: list[str] | str, expected: bool) -> None:
    assert has_required_hashtag(text, required) is expected


def test_long_text_is_fast() -> None:
    chunk = "利通美食😀 #我在利通带好货# aaaa.bbbb-cccc/ https://x.com/(((( ＃标签 "
    text = (chunk * (10_000 // len(chunk) + 1))[:10_000] + " https://v.douyin.com/Zz/"
    adversarial = ["a" * 10_000, "a." * 5_000, "#" + "字" * 10_000, "https://" + "a" * 10_000]
    start = time.perf_counter()
    parsed = parse_share_text(text)
    for t in adversarial:
        parse_share_text(t)
    assert time.perf_counter() - start < 2
    assert parsed is not None
    assert "我在利通带好货" in parsed.hashtags
    assert extract_urls(text)[-1] == "https://v.douyin.com/Zz/"


# --- properties -----------------------------------------------------------------------------

_CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
_TAGS = st.lists(st.text(_CJK, min_size=1, max_size=30), min_size=1, max_size=4, unique=True)
# Surrounding prose: CJK, Chinese punctuation, emoji and spaces, but nothing that could start
# a tag, a URL or a title bracket.
_PROSE = st.text(
    st.sampled_from([*"利通美食好吃看看，。！？…、“”（） 😀🔥", "\n"]), max_size=20
).map(lambda s: s + " ")
_CODE = st.text(st.sampled_from("ABCDEFGHabcdefgh0123456789"), min_size=4, max_size=12)


def _douyin(code: str, tags: list[str], pre: str, post: str) -> tuple[str, str]:
    url = f"https://v.douyin.com/{code}/"
    tagged = " ".join(f"#{t}#" for t in tags)
    return f"7.43 复制打开抖音，看看{pre}{tagged} {post}{url} Slp:/ 09/21 L@w.FH", url


def _kuaishou(code: str, tags: list[str], pre: str, post: str) -> tuple[str, str]:
    url = f"https://v.kuaishou.com/{code}"
    tagged = "".join(f"#{t} " for t in tags)
    return f'{url} {pre}{tagged}"某某"的作品 {post}复制此消息，打开【快手】直接观看！', url


def _xhs(code: str, tags: list[str], pre: str, post: str) -> tuple[str, str]:
    url = f"http://xhslink.com/a/{code}"
    tagged = "".join(f"＃{t}＃" for t in tags)
    return (
        f"{pre}{tagged} 某某的笔记 {post}{url} 复制本条信息，打开【小红书】App查看精彩内容！",
        url,
    )


def _bili(code: str, tags: list[str], pre: str, post: str) -> tuple[str, str]:
    url = f"https://b23.tv/{code}"
    tagged = " ".join(f"#{t}" for t in tags)
    return f"{pre}{tagged} 【利通美食-哔哩哔哩】 {post}{url}", url


def _taobao(code: str, tags: list[str], pre: str, post: str) -> tuple[str, str]:
    url = f"https://m.tb.cn/h.{code}?tk={code[::-1]}"
    tagged = " ".join(f"#{t}#" for t in tags)
    return f"【淘宝】{url} 「{pre}」{tagged} {post}点击链接直接打开", url


def _jd(code: str, tags: list[str], pre: str, post: str) -> tuple[str, str]:
    url = f"https://3.cn/10-{code}"
    tagged = " ".join(f"#{t}" for t in tags)
    return f"{url} 「京东」{pre}{tagged} {post}", url


def _channels(code: str, tags: list[str], pre: str, post: str) -> tuple[str, str]:
    url = f"https://weixin.qq.com/sph/{code}"
    tagged = "".join(f"#{t}\n" for t in tags)
    return f"{pre}{tagged}{post}{url}，", url


TEMPLATES = [
    (_douyin, "抖音"),
    (_kuaishou, "快手"),
    (_xhs, "小红书"),
    (_bili, "B站"),
    (_taobao, "淘宝"),
    (_jd, "京东"),
    (_channels, "视频号"),
]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(TEMPLATES), _CODE, _TAGS, _PROSE, _PROSE)
def test_share_templates_round_trip(
    template: tuple[Callable[..., tuple[str, str]], str],
    code: str,
    tags: list[str],
    pre: str,
    post: str,
) -> None:
    build, platform = template
    text, url = build(code, tags, pre, post)
    parsed = parse_share_text(text)
    assert parsed is not None
    assert parsed.url == normalise_url(url)
    assert parsed.platform == platform
    assert parsed.hashtags == tuple(tags)
    assert has_required_hashtag(text, [f"#{tags[-1]}#"])


_HOSTS = st.sampled_from(
    ["v.douyin.com", "www.douyin.com", "item.taobao.com", "b23.tv", "Item.JD.com", "example.com"]
)
_PATHS = st.lists(_CODE, max_size=3).map(lambda parts: "/" + "/".join(parts))
_CONTENT_PARAMS = st.lists(
    st.tuples(st.sampled_from(["id", "v", "p", "sku", "t"]), _CODE),
    max_size=3,
    unique_by=lambda kv: kv[0],
)
_TRACKING = st.lists(
    st.tuples(
        st.sampled_from(
            ["utm_source", "utm_campaign", "share_id", "share_token", "spm", "spm_id_from", "from",
             "timestamp", "xsec_source", "sharer", "tt_from", "u_code", "did", "iid", "vd_source"]
        ),
        st.text(st.sampled_from("abcXYZ0189-_."), max_size=10),
    ),
    max_size=6,
)  # fmt: skip


def _url(scheme: str, host: str, path: str, params: list[tuple[str, str]], frag: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params)
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "") + frag


@settings(max_examples=150, deadline=None)
@given(
    _HOSTS,
    _PATHS,
    _CONTENT_PARAMS,
    _TRACKING,
    st.randoms(use_true_random=False),
    st.sampled_from(["http", "https", "HTTPS"]),
    st.sampled_from(["", "/"]),
    st.sampled_from(["", "#frag", "#/x?y"]),
)
def test_tracking_params_do_not_change_the_key(
    host: str,
    path: str,
    content: list[tuple[str, str]],
    tracking: list[tuple[str, str]],
    rnd: random.Random,
    scheme: str,
    slash: str,
    frag: str,
) -> None:
    clean = _url("https", host, path, content, "")
    mixed = [*content, *tracking]
    rnd.shuffle(mixed)
    # A trailing '/' only carries no meaning on short-link hosts.
    slash = slash if host in {"v.douyin.com", "b23.tv"} else ""
    noisy = _url(scheme, host.upper(), path.rstrip("/") + slash or "/", mixed, frag)
    assert normalise_url(noisy) == normalise_url(clean)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), _HOSTS.flatmap(lambda h: _PATHS.map(lambda p: f"http://{h}{p}"))))
def test_normalise_url_is_idempotent(url: str) -> None:
    once = normalise_url(url)
    assert normalise_url(once) == once


@settings(max_examples=200, deadline=None)
@given(
    st.text(st.characters(codec="utf-8"), max_size=300)
    | st.text(st.sampled_from("htps:/.#＃【】「」&(a1_ 中"))
)
def test_extractors_never_raise(text: str) -> None:
    urls = extract_urls(text)
    for url in urls:
        assert url.lower().startswith(("http://", "https://"))
        normalised = normalise_url(url)
        assert normalised.startswith("https://")
        assert normalise_url(normalised) == normalised
    tags = extract_hashtags(text)
    assert all(0 < len(t) <= 30 and "#" not in t for t in tags)
    assert len({t.casefold() for t in tags}) == len(tags)
    parsed = parse_share_text(text)
    assert (parsed is None) == (not urls)
    has_required_hashtag(text, ["#我在利通带好货#", text])
