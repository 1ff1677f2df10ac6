"""One-shot commands every user has: the menu (帮助) and 我的."""

from __future__ import annotations

from sqlmodel import select

from bot.engine import Context
from bot.flows.organizer import menu_lines
from bot.flows.signup import describe
from bot.messages import Reply
from storage.models import Registration

MENU = (
    ("报名", "报名参赛"),
    ("修改报名", "修改报名信息"),
    ("报备", "报备一场直播"),
    ("战报", "上报直播数据"),
    ("作品", "提交短视频作品链接"),
    ("我的报备", "查看或取消报备"),
    ("排名", "查看我的排名"),
    ("我的", "查看我的报名"),
    ("帮助", "查看说明"),
)


def menu(ctx: Context) -> list[Reply]:
    lines = "\n".join(f"「{word}」{what}" for word, what in MENU) + menu_lines(ctx)
    return [
        Reply(
            "你好，我是直播带货赛事助手。回复下面的关键词开始：\n"
            f"{lines}\n任何时候回复「取消」可以退出当前操作。"
        )
    ]


def mine(ctx: Context) -> list[Reply]:
    regs = ctx.session.exec(
        select(Registration)
        .where(
            Registration.channel == ctx.incoming.channel,
            Registration.user_id == ctx.incoming.user,
        )
        .order_by(Registration.created_at)
    ).all()
    if not regs:
        return [Reply("你还没有报名任何赛事。回复「报名」开始报名。")]
    blocks = "\n\n".join(describe(ctx, reg) for reg in regs)
    return [Reply(f"我的报名：\n{blocks}\n\n如需修改，回复「修改报名」。")]
