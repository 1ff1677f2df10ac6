"""QR scene strings: which campaign and recommending unit a registration QR code carries.

Format ``<campaign>`` or ``<campaign>:<unit>``; both parts are slugs, so a scene stays within
WeChat's 64-character limit for ``scene_str`` (campaign ids <= 24, unit keys <= 32).
"""

from __future__ import annotations

import re

SCENE_MAX = 64
_SLUG = r"[a-z0-9][a-z0-9_-]*"


def make_scene(campaign_id: str, unit_key: str | None = None) -> str:
    scene = f"{campaign_id}:{unit_key}" if unit_key else campaign_id
    if len(scene) > SCENE_MAX:
        raise ValueError(f"scene longer than {SCENE_MAX} characters: {scene!r}")
    return scene


def parse_scene(scene: str) -> tuple[str, str | None] | None:
    """(campaign, unit or None), or None for anything that is not a scene of ours."""
    match = re.fullmatch(rf"({_SLUG})(?::({_SLUG}))?", scene.strip())
    if not match or len(scene.strip()) > SCENE_MAX:
        return None
    return match.group(1), match.group(2)
