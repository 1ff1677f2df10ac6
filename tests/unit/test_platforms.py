"""bot.rules.platforms: alias lookup and host -> platform mapping."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.rules.platforms import PLATFORMS, canonical_platform, platform_of_host

ALIASES: list[tuple[str, str]] = [
    ("抖音", "抖音"), ("douyin", "抖音"), ("DY", "抖音"), ("dy", "抖音"), ("抖音号", "抖音"),
    ("抖音直播", "抖音"), ("ＤＹ", "抖音"), (" 抖 音 ", "抖音"), ("DouYin", "抖音"),
    ("快手", "快手"), ("ks", "快手"), ("KS", "快手"), ("kuaishou", "快手"),
    ("视频号", "视频号"), ("微信视频号", "视频号"), ("微信", "视频号"),
    ("淘宝", "淘宝"), ("淘宝直播", "淘宝"), ("点淘", "淘宝"), ("taobao", "淘宝"), ("天猫", "淘宝"),
    ("京东", "京东"), ("jd", "京东"), ("JD", "京东"), ("京东直播", "京东"),
    ("小红书", "小红书"), ("xhs", "小红书"), ("红书", "小红书"),
    ("B站", "B站"), ("b站", "B站"), ("Ｂ站", "B站"), ("哔哩哔哩", "B站"), ("bilibili", "B站"),
    ("拼多多", "拼多多"), ("pdd", "拼多多"), ("多多直播", "拼多多"),
    ("微博", "微博"), ("weibo", "微博"), ("Weibo\t", "微博"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), ALIASES)
def test_canonical_platform_aliases(text: str, expected: str) -> None:
    assert canonical_platform(text) == expected


@pytest.mark.parametrize(
    "text", ["", "   ", "抖", "youtube", "微信公众号", "dyy", "#抖音", "淘宝网店"]
)
def test_canonical_platform_unknown(text: str) -> None:
    assert canonical_platform(text) is None


@pytest.mark.parametrize("name", PLATFORMS)
def test_every_canonical_name_maps_to_itself(name: str) -> None:
    assert canonical_platform(name) == name


HOSTS: list[tuple[str, str | None]] = [
    ("douyin.com", "抖音"), ("v.douyin.com", "抖音"), ("www.iesdouyin.com", "抖音"),
    ("v3-web.douyinvod.com", "抖音"), ("V.DOUYIN.COM", "抖音"), ("v.douyin.com.", "抖音"),
    ("v.douyin.com:443", "抖音"),
    ("v.kuaishou.com", "快手"), ("www.gifshow.com", "快手"), ("m.kwai.com", "快手"),
    ("channels.weixin.qq.com", "视频号"), ("weixin.qq.com", "视频号"),
    ("xiaohongshu.com", "小红书"), ("www.xiaohongshu.com", "小红书"), ("xhslink.com", "小红书"),
    ("www.bilibili.com", "B站"), ("b23.tv", "B站"),
    ("m.tb.cn", "淘宝"), ("item.taobao.com", "淘宝"), ("detail.tmall.com", "淘宝"),
    ("item.jd.com", "京东"), ("3.cn", "京东"),
    ("mobile.yangkeduo.com", "拼多多"), ("pinduoduo.com", "拼多多"),
    ("weibo.com", "微博"), ("m.weibo.cn", "微博"),
    # Suffix match must respect the dot boundary.
    ("evil-douyin.com", None), ("notdouyin.com", None), ("douyin.com.evil.com", None),
    ("xb23.tv", None), ("13.cn", None), ("fakejd.com", None),
    # qq.com in general, and 公众号 articles, are not 视频号.
    ("qq.com", None), ("mp.weixin.qq.com", None), ("www.qq.com", None),
    ("", None), ("com", None), ("example.com", None), ("[::1]", None),
]  # fmt: skip


@pytest.mark.parametrize(("host", "expected"), HOSTS)
def test_platform_of_host(host: str, expected: str | None) -> None:
    assert platform_of_host(host) == expected


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(_LABEL, max_size=3),
    st.sampled_from([("douyin.com", "抖音"), ("xhslink.com", "小红书"), ("3.cn", "京东")]),
)
def test_any_subdomain_of_a_platform_domain_matches(
    labels: list[str], domain_platform: tuple[str, str]
) -> None:
    domain, platform = domain_platform
    assert platform_of_host(".".join([*labels, domain])) == platform


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_lookups_never_raise(text: str) -> None:
    assert canonical_platform(text) in (None, *PLATFORMS)
    assert platform_of_host(text) in (None, *PLATFORMS)
