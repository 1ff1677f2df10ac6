"""Settings from the environment: one typed object, validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET = "dev-only-secret-change-me"  # `serve` refuses it outside BOT_ENV=dev


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        default=f"sqlite:///{ROOT / 'data' / 'bot.sqlite3'}", alias="DATABASE_URL"
    )
    campaigns_dir: Path = Field(default=ROOT / "config" / "campaigns", alias="BOT_CAMPAIGNS_DIR")
    env: Literal["dev", "prod"] = Field(default="prod", alias="BOT_ENV")
    # Signs web-chat identities and export links; a per-install random value in production.
    secret_key: str = Field(default=DEV_SECRET, alias="BOT_SECRET_KEY")
    # Unset: `serve` uses the address it listens on.
    public_base_url: str = Field(default="http://127.0.0.1:8080", alias="BOT_PUBLIC_BASE_URL")
    conversation_idle_minutes: int = Field(default=120, alias="BOT_CONVERSATION_IDLE_MINUTES")

    wechat_token: str | None = Field(default=None, alias="WECHAT_TOKEN")
    wechat_appid: str | None = Field(default=None, alias="WECHAT_APPID")
    wechat_secret: str | None = Field(default=None, alias="WECHAT_SECRET")
    wechat_encoding_aes_key: str | None = Field(default=None, alias="WECHAT_ENCODING_AES_KEY")
    wechat_api_base: str = Field(default="https://api.weixin.qq.com", alias="WECHAT_API_BASE")

    feishu_app_id: str | None = Field(default=None, alias="FEISHU_APP_ID")
    feishu_app_secret: str | None = Field(default=None, alias="FEISHU_APP_SECRET")
    feishu_verification_token: str | None = Field(default=None, alias="FEISHU_VERIFICATION_TOKEN")
    feishu_encrypt_key: str | None = Field(default=None, alias="FEISHU_ENCRYPT_KEY")
    feishu_domain: str = Field(default="https://open.feishu.cn", alias="FEISHU_DOMAIN")
    # webhook: events at POST /feishu/events; ws: a long connection, for offices without a public URL
    feishu_mode: Literal["webhook", "ws"] = Field(default="webhook", alias="FEISHU_MODE")

    @property
    def dev(self) -> bool:
        return self.env == "dev"
