"""The driver SDK: a Python API for scripts that run campaigns on a deployment.

from dispatcher.sdk import Dispatcher

with Dispatcher.connect() as d:           # a local deployment, or address="ray://..."
    number = d.register_instance("1001", "TOKEN", "biz-1")
    campaign = d.create_campaign("promo", {"name": "hello_world", "language": "en_US"},
                                 [number.id], [{"phone": "+5511999990001"}])
    d.send(campaign.id)
    d.wait(campaign.id)                   # a live progress bar

An A/B test of templates: ``d.create_campaign("promo", None, [number.id], recipients,
variants=[{"template": a, "weight": 1}, {"template": b, "weight": 1}],
auto_winner={"min_sends_per_variant": 1000})``, then ``d.variants(campaign.id)``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from uuid import UUID

import ray
from ray.exceptions import GetTimeoutError, RayError
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from dispatcher import operations
from dispatcher.ab.report import VariantReport
from dispatcher.ab.settings import ab_test_from
from dispatcher.config import Settings, load_settings
from dispatcher.deployment import COORDINATOR_NAME, NAMESPACE, Deployment
from dispatcher.engine.config import EngineConfig
from dispatcher.engine.windows import Waiting, waiting
from dispatcher.keyfile import load_keyring
from dispatcher.meta.tiers import MessagingTier
from dispatcher.retry_policy import RetryPolicy
from dispatcher.scheduling import check_expiry
from dispatcher.services import Services
from dispatcher.store import Store
from dispatcher.store.attempts import Attempt
from dispatcher.store.models import Campaign, CampaignStatus, Ingested, Instance, NewRecipient
from dispatcher.store.suppression_import import Imported
from dispatcher.store.suppressions import Suppression
from dispatcher.suppression_files import parse_line, suppression_lines
from dispatcher.window_settings import MAX_PER_MINUTE, SendWindowIn

T = TypeVar("T")
log = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT_S = 60.0

FINAL = {CampaignStatus.COMPLETED, CampaignStatus.CANCELLED, CampaignStatus.FAILED}


def recipient(item: NewRecipient | Mapping[str, Any]) -> NewRecipient:
    """A recipient from a dict: ``{"phone": "+55..."}`` or ``{"user_id": "BR.x"}``, with
    optional ``variables``."""
    if isinstance(item, NewRecipient):
        return item
    return NewRecipient(
        phone=item.get("phone"), user_id=item.get("user_id"), variables=item.get("variables")
    )


class Dispatcher:
    """A connection to a deployment: the coordinator actor and the store."""

    def __init__(
        self,
        coordinator: Any,
        deployment: Deployment,
        *,
        services: Services | None = None,
        started_ray: bool = False,
        dashboard_url: str | None = None,
    ) -> None:
        self.coordinator = coordinator
        self.dashboard_url = dashboard_url
        """The Ray dashboard of the cluster this process started or joined, when known."""
        self.deployment = deployment
        self._services = services
        self._started_ray = started_ray
        self._loop = asyncio.new_event_loop()
        self._store: Store | None = None

    @classmethod
    def connect(
        cls,
        address: str | None = None,
        *,
        settings: Settings | None = None,
        engine: EngineConfig | None = None,
    ) -> Dispatcher:
        """Join a running deployment at ``address`` (its coordinator must be up), or start a
        local one: Ray, the coordinator, and embedded Redis and Postgres when none is set."""
        settings = settings or load_settings()
        address = address if address is not None else (settings.ray_address or None)
        started_ray = False
        dashboard_url = None
        if not ray.is_initialized():
            context = ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
            dashboard_url = getattr(context, "dashboard_url", None) or None
            started_ray = address is None
        if address is not None:
            running: Any = ray.get_actor(COORDINATOR_NAME, namespace=NAMESPACE)
            public: Deployment = ray.get(running.deployment.remote())
            return cls(running, public.joined(settings), dashboard_url=dashboard_url)
        keyring = load_keyring(settings)  # a bad key fails before any server starts
        services = Services(settings)
        deployment = Deployment.from_settings(settings, services.start(), engine, keyring)
        # The one place the domain reaches into actors/: starting a deployment needs them.
        from actors.coordinator import coordinator_handle

        coordinator = coordinator_handle(deployment)
        ready = ray.get(coordinator.ping.remote())
        if not ready["ready"]:
            raise RuntimeError(f"coordinator failed to start: {ready['error']}")
        return cls(
            coordinator,
            deployment,
            services=services,
            started_ray=started_ray,
            dashboard_url=dashboard_url,
        )

    # -- instances and campaigns ---------------------------------------------------------

    def register_instance(
        self,
        phone_number_id: str,
        access_token: str,
        business_id: str,
        *,
        name: str = "",
        messaging_tier: MessagingTier | str | None = None,
        throughput_mps: int | None = None,
        waba_id: str | None = None,
    ) -> Instance:
        tier = MessagingTier.parse(messaging_tier) if messaging_tier is not None else None
        instance = self._run(
            operations.register_instance(
                self._get_store(),
                phone_number_id=phone_number_id,
                access_token=access_token,
                business_id=business_id,
                name=name,
                messaging_tier=tier,
                throughput_mps=throughput_mps,
                waba_id=waba_id,
            )
        )
        ray.get(self.coordinator.refresh_instance.remote(str(instance.id)))
        return instance

    def create_campaign(
        self,
        name: str,
        template: Mapping[str, Any] | None,
        instance_ids: Iterable[UUID],
        recipients: Iterable[NewRecipient | Mapping[str, Any]] = (),
        *,
        scheduled_at: datetime | None = None,
        send_window: Mapping[str, Any] | None = None,
        expires_at: datetime | None = None,
        max_per_minute: int | None = None,
        retry_policy: RetryPolicy | Mapping[str, Any] | None = None,
        variants: Sequence[Mapping[str, Any]] | None = None,
        confidence: float | None = None,
        auto_winner: Mapping[str, Any] | None = None,
    ) -> Campaign:
        """A draft campaign; recipients are streamed, never held whole in memory.
        ``send_window``, ``expires_at``, ``max_per_minute``: validated as the API does
        (README, "Send windows"); a ValidationError names the field. ``retry_policy``: its
        automatic retries (None: the default policy; README, "Automatic retry"), validated
        the same way.

        ``variants`` instead of ``template``: an A/B test, each ``{"template", "weight",
        "label"}`` (2 to 10); ``confidence`` of the read rates' intervals (0.95);
        ``auto_winner``: ``{"min_sends_per_variant", "confidence", "max_looks",
        "read_after_s"}`` (README, A/B variants).
        A ``ValueError`` names the setting that is wrong."""
        window = None if send_window is None else SendWindowIn.model_validate(send_window)
        if expires_at is not None:
            expires_at = check_expiry(expires_at, scheduled_at, datetime.now(UTC))
        if max_per_minute is not None and not 1 <= max_per_minute <= MAX_PER_MINUTE:
            raise ValueError(f"max_per_minute: from 1 to {MAX_PER_MINUTE:,}")
        policy = None if retry_policy is None else RetryPolicy.model_validate(retry_policy)
        ab = None
        if variants is not None:
            if template is not None:
                raise ValueError("template: give either template or variants, not both")
            ab = ab_test_from(variants, confidence, auto_winner)
            template = ab.variants[0].template
        elif template is None:
            raise ValueError("template: give either template or variants")
        elif confidence is not None or auto_winner is not None:
            raise ValueError("confidence, auto_winner: only for a campaign of variants")
        return self._run(
            operations.create_campaign(
                self._get_store(),
                name=name,
                template=template,
                instance_ids=list(instance_ids),
                recipients=(recipient(r) for r in recipients),
                scheduled_at=scheduled_at,
                send_window=None if window is None else window.stored(),
                expires_at=expires_at,
                max_per_minute=max_per_minute,
                retry_policy=None if policy is None else policy.model_dump(mode="json"),
                ab_test=ab,
            )
        )

    def attempts(self, recipient_id: int) -> list[Attempt]:
        """A recipient's attempts, first to current, each with its wamid and error code."""
        return self._run(self._get_store().attempts.of_recipient(recipient_id))

    def variants(self, campaign_id: UUID) -> VariantReport | None:
        """An A/B campaign's variants: counters, read rate and interval, the winner once
        decided (``.to_json()`` as the API shows it); None for a campaign of one template."""
        if self._run(self._get_store().campaigns.get(campaign_id)) is None:
            raise operations.NotFoundError("campaign", campaign_id)
        return self._run(self._get_store().variants.report(campaign_id))

    def add_recipients(
        self, campaign_id: UUID, recipients: Iterable[NewRecipient | Mapping[str, Any]]
    ) -> Ingested:
        """Append recipients, streamed; says how many rows were recorded and how many of them
        were duplicates (an address the campaign already has) or invalid (a phone in no
        numbering plan): recorded, never sent."""
        return self._run(
            self._get_store().recipients.ingest(campaign_id, (recipient(r) for r in recipients))
        )

    def send(self, campaign_id: UUID) -> bool:
        return bool(ray.get(self.coordinator.start_campaign.remote(str(campaign_id))))

    def pause(self, campaign_id: UUID) -> bool:
        return bool(ray.get(self.coordinator.pause_campaign.remote(str(campaign_id))))

    def resume(self, campaign_id: UUID) -> bool:
        return bool(ray.get(self.coordinator.resume_campaign.remote(str(campaign_id))))

    def cancel(self, campaign_id: UUID) -> bool:
        return bool(ray.get(self.coordinator.cancel_campaign.remote(str(campaign_id))))

    def release_portfolio(self, business_id: str) -> list[str]:
        """End a 131064 hold once Meta lifted it; the ids of the numbers started again."""
        return list(ray.get(self.coordinator.release_portfolio.remote(business_id)))

    def campaign(self, campaign_id: UUID) -> Campaign:
        found = self._run(self._get_store().campaigns.get(campaign_id))
        if found is None:
            raise operations.NotFoundError("campaign", campaign_id)
        return found

    def waiting(self, campaign_id: UUID) -> Waiting:
        """How many of its recipients wait for their send window, and until when."""
        store = self._get_store()
        campaign = self.campaign(campaign_id)
        held = self._run(store.windows.waiting([campaign_id])).get(campaign_id)
        return waiting(campaign, held, datetime.now(UTC))

    # -- suppressions (per business portfolio: who gets no marketing) ---------------------

    def suppress(
        self, business_id: str, addresses: Iterable[str], *, reason: str = "operator"
    ) -> int:
        """Suppress E.164 phones or BSUIDs for the business's campaigns; how many were new.
        A malformed address raises :class:`RecipientLineError` (its 1-based position)."""
        checked = [parse_line(i, [a]).address for i, a in enumerate(addresses, 1)]
        store = self._get_store()
        return self._run(store.suppressions.add(business_id, checked, reason, "operator"))

    def unsuppress(self, business_id: str, addresses: Iterable[str]) -> int:
        """Lift suppressions; how many there were."""
        return self._run(self._get_store().suppressions.remove(business_id, list(addresses)))

    def suppressions(
        self, business_id: str | None = None, address: str | None = None
    ) -> list[Suppression]:
        """Every suppression (of one business, of one address), read a page at a time."""
        store = self._get_store()
        found: list[Suppression] = []
        while page := self._run(
            store.suppressions.page(business_id, address=address, limit=1_000, offset=len(found))
        ):
            found += page
        return found

    def import_suppressions(self, business_id: str, path: Path | str) -> Imported:
        """Import a CSV list (``address[,reason]`` a line, optional header): all of it, or
        nothing when a line is refused (:class:`RecipientLineError`, with its number)."""
        given = suppression_lines(_file_chunks(Path(path)))
        return self._run(self._get_store().suppressions.import_list(business_id, given))

    def stats(self, instance_id: UUID | None = None) -> dict[str, Any]:
        """Queue depths, per-instance limiter / breaker / rate stats, portfolios."""
        key = None if instance_id is None else str(instance_id)
        result: dict[str, Any] = ray.get(self.coordinator.stats.remote(key))
        return result

    def wait(
        self,
        campaign_id: UUID,
        *,
        progress: bool = True,
        timeout_s: float | None = None,
        poll_s: float = 0.5,
    ) -> Campaign:
        """Until the campaign is completed, cancelled or failed; a live bar on the way."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        campaign = self.campaign(campaign_id)
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, disable=not progress) as bar:
            task = bar.add_task(campaign.name, total=campaign.total_recipients, detail="")
            first_sent, first_t = campaign.total_sent, time.monotonic()
            rate = 0.0
            while campaign.status not in FINAL:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"campaign {campaign_id} still {campaign.status}")
                time.sleep(poll_s)
                campaign = self.campaign(campaign_id)
                # The average since waiting began: steady, and true at the end too.
                elapsed = max(time.monotonic() - first_t, 1e-3)
                rate = (campaign.total_sent - first_sent) / elapsed
                settled = campaign.total_recipients - campaign.pending - campaign.in_flight
                bar.update(
                    task,
                    completed=settled,
                    total=campaign.total_recipients,
                    detail=_detail(campaign, rate),
                )
        return campaign

    # -- plumbing -----------------------------------------------------------------------

    def _get_store(self) -> Store:
        if self._store is None:
            self._store = self._run(
                Store.open(
                    self.deployment.database_url, keyring=self.deployment.keyring, max_size=4
                )
            )
        return self._store

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coroutine)

    def close(self, *, shutdown: bool | None = None) -> None:
        """Disconnect; a deployment this object started is stopped (or kept: shutdown=False)."""
        if self._store is not None:
            self._run(self._store.close())
            self._store = None
        stop = self._services is not None if shutdown is None else shutdown
        if stop:
            try:  # graceful: in-flight sends finish and their results are written
                ray.get(self.coordinator.shutdown.remote(), timeout=SHUTDOWN_TIMEOUT_S)
            except (GetTimeoutError, RayError):
                log.warning("the coordinator did not stop in %ss; killing it", SHUTDOWN_TIMEOUT_S)
            ray.kill(self.coordinator, no_restart=True)
        if self._started_ray and stop:
            ray.shutdown()
        if self._services is not None and stop:
            self._services.stop()
        self._loop.close()

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def _file_chunks(path: Path, size: int = 2**20) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := await asyncio.to_thread(file.read, size):
            yield chunk


def _detail(campaign: Campaign, rate: float) -> str:
    return (
        f"sent {campaign.total_sent:,}  delivered {campaign.total_delivered:,}  "
        f"read {campaign.total_read:,}  failed {campaign.total_failed:,}  "
        f"duplicates {campaign.total_duplicates:,}  suppressed {campaign.total_suppressed:,}  "
        f"expired {campaign.total_expired:,}  "
        f"invalid {campaign.total_invalid:,}  "
        f"{rate:,.0f} msg/s  [{campaign.status}]"
    )
