"""Canonical livestream / short-video platforms and the names people actually type for them."""

from __future__ import annotations

import unicodedata

PLATFORMS: tuple[str, ...] = (
    "抖音",
    "快手",
    "视频号",
    "淘宝",
    "京东",
    "小红书",
    "B站",
    "拼多多",
    "微博",
)

# Keys are in _key() form (NFKC, case-folded, no whitespace), so 'ＤＹ', 'Dy ' and 'dy' all hit.
_ALIASES: dict[str, str] = {
    alias: canonical
    for canonical, aliases in {
        "抖音": ("抖音", "douyin", "dy", "抖音号", "抖音直播", "抖音极速版"),
        "快手": ("快手", "ks", "kuaishou", "快手号", "快手直播", "快手极速版"),
        "视频号": ("视频号", "微信视频号", "微信", "视频号直播"),
        "淘宝": ("淘宝", "淘宝直播", "点淘", "taobao", "天猫", "tmall", "手机淘宝"),
        "京东": ("京东", "jd", "京东直播"),
        "小红书": ("小红书", "xhs", "红书", "小红书直播", "xiaohongshu"),
        "B站": ("b站", "哔哩哔哩", "bilibili", "b站直播"),
        "拼多多": ("拼多多", "pdd", "多多直播", "pinduoduo"),
        "微博": ("微博", "weibo", "新浪微博", "微博直播"),
    }.items()
    for alias in aliases
}

# Registrable-domain suffixes. weixin.qq.com is deliberately exact (see _EXACT_HOSTS) because
# mp.weixin.qq.com is 公众号 articles, not 视频号.
_HOST_SUFFIXES: dict[str, str] = {
    "douyin.com": "抖音",
    "iesdouyin.com": "抖音",
    "douyinvod.com": "抖音",
    "kuaishou.com": "快手",
    "gifshow.com": "快手",
    "kwai.com": "快手",
    "channels.weixin.qq.com": "视频号",
    "xiaohongshu.com": "小红书",
    "xhslink.com": "小红书",
    "bilibili.com": "B站",
    "b23.tv": "B站",
    "taobao.com": "淘宝",
    "tb.cn": "淘宝",
    "tmall.com": "淘宝",
    "jd.com": "京东",
    "3.cn": "京东",
    "yangkeduo.com": "拼多多",
    "pinduoduo.com": "拼多多",
    "weibo.com": "微博",
    "weibo.cn": "微博",
}
_EXACT_HOSTS: dict[str, str] = {"weixin.qq.com": "视频号"}


def _key(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def canonical_platform(text: str) -> str | None:
    """Map a user-typed platform name ('DY', '抖音直播', 'b站' ...) to its PLATFORMS entry."""
    return _ALIASES.get(_key(text))


def _clean_host(host: str) -> str:
    host = host.strip().lower()
    # Tolerate 'host:port' and the FQDN trailing dot; IPv6 literals never match a platform anyway.
    if not host.startswith("[") and host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def platform_of_host(host: str) -> str | None:
    """Platform owning `host`, by suffix on a dot boundary ('evil-douyin.com' does not match)."""
    host = _clean_host(host)
    if host in _EXACT_HOSTS:
        return _EXACT_HOSTS[host]
    labels = host.split(".")
    # Longest suffix first, so a more specific entry would win over a shorter one.
    for i in range(len(labels) - 1):
        platform = _HOST_SUFFIXES.get(".".join(labels[i:]))
        if platform is not None:
            return platform
    return None
