"""A driver script: a campaign sent through the SDK to the Meta sandbox, on this machine.

    .venv/bin/python examples/send_campaign.py

Starts the sandbox and a local deployment (Ray, embedded Redis and Postgres), registers two
numbers of one portfolio, sends 2,000 messages with a progress bar, prints the stats.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dispatcher.config import load_settings
from dispatcher.meta.tiers import MessagingTier
from dispatcher.sandbox.config import NumberConfig, PortfolioConfig, SandboxConfig
from dispatcher.sandbox.server import SandboxProcess
from dispatcher.sdk import Dispatcher

SANDBOX = SandboxConfig(
    numbers=[
        NumberConfig(phone_number_id="4001", token="example-4001", business_id="example-biz"),  # noqa: S106 - sandbox
        NumberConfig(phone_number_id="4002", token="example-4002", business_id="example-biz"),  # noqa: S106 - sandbox
    ],
    portfolios=[PortfolioConfig(business_id="example-biz", messaging_tier=MessagingTier.TIER_10K)],
)


def main() -> None:
    with tempfile.TemporaryDirectory() as data, SandboxProcess(SANDBOX) as sandbox:
        settings = load_settings().model_copy(
            update={"graph_url": sandbox.url, "data_dir": Path(data)}
        )
        with Dispatcher.connect(settings=settings) as dispatcher:
            numbers = [
                dispatcher.register_instance(n.phone_number_id, n.token, n.business_id).id
                for n in SANDBOX.numbers
            ]
            campaign = dispatcher.create_campaign(
                "example",
                {"name": "hello_world", "language": "en_US"},
                numbers,
                ({"phone": f"+5521{900000000 + i}"} for i in range(2_000)),
            )
            dispatcher.send(campaign.id)
            done = dispatcher.wait(campaign.id)
            print(f"{done.status}: {done.total_sent:,} sent, {done.total_failed:,} failed")
            for stats in dispatcher.stats()["instances"].values():
                print(
                    f"  number {stats.get('phone_number_id')}: {stats.get('sent')} sent, "
                    f"limit {stats.get('configured_rate_mps')} msg/s"
                )


if __name__ == "__main__":
    main()
