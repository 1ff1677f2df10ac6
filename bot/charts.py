"""Chart pictures for digests (matplotlib, no display): one horizontal bar panel per group.

Chinese labels need a CJK font. matplotlib does not load font collections (.ttc, how Noto CJK
ships) on its own, so the first system font whose file name says CJK is registered; without one
the chart falls back to rank numbers instead of showing empty boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

from matplotlib import font_manager, rc_context
from matplotlib.figure import Figure  # no pyplot: no display, no global figure state

CJK_HINTS = ("cjk", "wqy", "wenquanyi", "simhei", "simsun", "msyh", "pingfang", "sourcehan")
BAR_COLOR = "#e8542f"
Panel = tuple[str, Sequence[tuple[str, float]]]  # a group's name, (label, score) best first


@cache
def cjk_family() -> str | None:
    """A font family that has Chinese glyphs, registering one from the system if needed."""
    for path in font_manager.findSystemFonts():
        if any(hint in Path(path).name.lower() for hint in CJK_HINTS):
            known = {f.name for f in font_manager.fontManager.ttflist}
            font_manager.fontManager.addfont(path)
            added = [f.name for f in font_manager.fontManager.ttflist if f.name not in known]
            # A collection holds several scripts' faces: the Simplified Chinese one reads best.
            for name in sorted(added, key=lambda n: (" SC" not in n, n)):
                return name
    return None


def leaderboard_chart(title: str, panels: Sequence[Panel], path: Path) -> Path:
    """Write a PNG of each group's top entries by score (0–100) to `path`."""
    family = cjk_family()
    shown = [p for p in panels if p[1]] or [(panels[0][0] if panels else "", [])]
    rows = sum(max(len(entries), 1) for _name, entries in shown)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rc_context({"font.family": [family, "DejaVu Sans"] if family else ["DejaVu Sans"]}):
        figure = Figure(figsize=(6, 1.2 + 0.32 * rows + 0.5 * len(shown)), dpi=150)
        heights = [max(len(entries), 1) + 1 for _name, entries in shown]
        axes = figure.subplots(len(shown), 1, squeeze=False, height_ratios=heights)[:, 0]
        for ax, (name, entries) in zip(axes, shown, strict=True):
            labels = [label if family else f"No.{i}" for i, (label, _s) in enumerate(entries, 1)][
                ::-1
            ]
            scores = [score for _label, score in entries][::-1]
            # Positions, not labels: two streamers may share a masked name (王*).
            bars = ax.barh(range(len(scores)), scores, color=BAR_COLOR)
            ax.set_yticks(range(len(scores)), labels)
            ax.bar_label(bars, labels=[f"{s:g}" for s in scores], padding=3, fontsize=8)
            ax.set_xlim(0, 110)
            ax.set_title(name if family else "", loc="left", fontsize=10)
            ax.tick_params(axis="y", labelsize=9)
            ax.spines[["top", "right"]].set_visible(False)
            if not entries:
                ax.text(
                    0.5, 0.5, "暂无成绩" if family else "-", ha="center", transform=ax.transAxes
                )
                ax.set_yticks([])
        figure.suptitle(title if family else "", fontsize=12)
        figure.tight_layout()
        figure.savefig(path)
    return path
