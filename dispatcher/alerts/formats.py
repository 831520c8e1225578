"""Each service's payload for one alert.

Slack incoming webhooks take ``text`` (the notification's fallback) and Block Kit
``blocks``; ``section`` blocks carry ``mrkdwn`` text and up to 10 ``fields``, and ``&``,
``<``, ``>`` must be escaped in mrkdwn. Sources: Slack, "Sending messages using incoming
webhooks" (docs.slack.dev/messaging/sending-messages-using-incoming-webhooks), "Section
block" and "Formatting message text" (docs.slack.dev/reference/block-kit/blocks/section-block),
and "Sending data as a message with a Slack incoming webhook URL"
(docs.slack.dev/tools/slack-github-action/sending-data-slack-incoming-webhook).

Discord's Execute Webhook takes ``content`` (up to 2,000 characters) and up to 10
``embeds`` with ``title`` (256), ``description`` (4,096), an integer ``color`` and up to 25
``fields`` ({``name`` (256), ``value`` (1,024), ``inline``}); ``allowed_mentions`` with an
empty ``parse`` keeps a text from pinging anyone. Sources: Discord developer docs, "Webhook
resource: Execute Webhook" and "Message resource: Embed object, Embed limits"
(discord.com/developers/docs/resources/webhook#execute-webhook), and python-discord-webhook's
README (pypi.org/project/discord-webhook) for the same shape in use.
"""

from __future__ import annotations

from typing import Any

from dispatcher.alerts.events import Alert, Severity

DISCORD_COLORS = {
    Severity.CRITICAL: 0xD32F2F,
    Severity.WARNING: 0xF9A825,
    Severity.INFO: 0x2E7D32,
}
SLACK_ICONS = {
    Severity.CRITICAL: ":rotating_light:",
    Severity.WARNING: ":warning:",
    Severity.INFO: ":white_check_mark:",
}
SLACK_MAX_FIELDS = 10
DISCORD_MAX_FIELDS = 25


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(alert: Alert) -> dict[str, Any]:
    """``{"text", "blocks"}``: a mrkdwn section with the title and text, one with fields."""
    icon = SLACK_ICONS[alert.severity]
    title, text = _slack_escape(alert.title), _slack_escape(alert.text)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{title}*\n{text}"}}
    ]
    if alert.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{_slack_escape(name)}*\n{_slack_escape(value)}"}
                    for name, value in alert.fields[:SLACK_MAX_FIELDS]
                ],
            }
        )
    # The fallback text is mrkdwn too (and the push notification): escaped like the blocks,
    # so a campaign named "<!channel>" pings nobody and links nowhere.
    return {"text": f"{title}: {text}"[:3000], "blocks": blocks}


def discord_payload(alert: Alert) -> dict[str, Any]:
    """``{"content", "embeds": [{"title", "description", "color", "fields"}]}``."""
    return {
        "content": f"[{alert.severity.value}] {alert.title}"[:2000],
        "embeds": [
            {
                "title": alert.title[:256],
                "description": alert.text[:4096],
                "color": DISCORD_COLORS[alert.severity],
                "fields": [
                    {"name": name[:256], "value": (value or "-")[:1024], "inline": True}
                    for name, value in alert.fields[:DISCORD_MAX_FIELDS]
                ],
            }
        ],
        "allowed_mentions": {"parse": []},
    }
