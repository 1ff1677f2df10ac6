"""How numbers, times and names are shown to people."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from bot.clock import SHANGHAI


def fmt_when(when: datetime) -> str:
    """'2024年9月11日 23:59' in Asia/Shanghai."""
    local = when.astimezone(SHANGHAI)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def fmt_amount(value: Decimal | int | float) -> str:
    """12000 -> '1.2万', 8000 -> '8000', 88.5 -> '88.5'."""
    number = Decimal(str(value))
    if abs(number) >= 10000:
        return f"{(number / 10000).quantize(Decimal('0.01')).normalize():f}万"
    return f"{number.quantize(Decimal('0.01')).normalize():f}"


def fmt_minutes(minutes: int) -> str:
    """90 -> '1小时30分钟', 120 -> '2小时', 45 -> '45分钟'."""
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest}分钟"
    return f"{hours}小时{rest}分钟" if rest else f"{hours}小时"


def mask_name(name: str) -> str:
    """王小文 -> 王*文, 王文 -> 王*, a single character stays: public pages never show full names."""
    name = name.strip()
    if len(name) <= 1:
        return name or "*"
    if len(name) == 2:
        return f"{name[0]}*"
    return f"{name[0]}{'*' * (len(name) - 2)}{name[-1]}"


def mask_mobile(mobile: str) -> str:
    return f"{mobile[:3]}****{mobile[-4:]}" if len(mobile) == 11 else "***"
