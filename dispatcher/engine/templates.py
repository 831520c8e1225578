"""Each campaign's template as an instance actor sends it: read from Postgres once, kept.

Batches carry no template (see :mod:`dispatcher.engine.batch`). A campaign of A/B variants
(``dispatcher/ab``) has one template per variant, read together; each batch item names its
recipient's variant. A campaign's templates never change once the campaign exists, so a kept
entry never goes stale: entries leave only to
stay within the bounds (least recently used first), or when the campaign stopped. Postgres
is the template's one home, so a batch reclaimed, dead-lettered and retried, or routed again
after Redis lost its data always finds it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson

from dispatcher.engine.batch import template_from_json
from dispatcher.errors import DispatcherError
from dispatcher.meta.messages import Template

Stored = dict[str, Any] | tuple[dict[str, Any], Sequence[dict[str, Any]]]
"""A campaign's template as stored, or its template and its variants' templates."""
Load = Callable[[UUID], Awaitable[Stored | None]]


class UnknownVariantError(DispatcherError):
    """A batch item of a campaign of variants names none of them: sending it another
    variant's template would send what the recipient was not assigned and count it against
    the wrong variant. It fails unsent instead."""

    def __init__(self, variant: int | None, variants: int) -> None:
        super().__init__(
            f"variant {variant} is not one of the campaign's {variants} variants (0 to "
            f"{variants - 1})"
        )
        self.variant = variant


@dataclass(frozen=True, slots=True)
class CampaignTemplates:
    """A campaign's template, and its variants' (none for a campaign of one template)."""

    default: Template
    variants: tuple[Template, ...] = ()

    def pick(self, variant: int | None) -> Template:
        """The template of ``variant``; the campaign's own when it has no variants. Raises
        :class:`UnknownVariantError` when it has variants and ``variant`` is None or not
        one of them."""
        if not self.variants:
            return self.default
        if variant is None or not 0 <= variant < len(self.variants):
            raise UnknownVariantError(variant, len(self.variants))
        return self.variants[variant]


@dataclass(frozen=True, slots=True)
class _Entry:
    templates: CampaignTemplates
    size_bytes: int


class TemplateCache:
    """Templates by campaign, at most ``max_campaigns`` of them and about ``max_bytes``."""

    def __init__(self, load: Load, *, max_campaigns: int, max_bytes: int) -> None:
        self._load = load
        self._max_campaigns = max_campaigns
        self._max_bytes = max_bytes
        self._entries: OrderedDict[UUID, _Entry] = OrderedDict()
        self._bytes = 0
        self.loads = 0
        """Reads from Postgres so far (a hit costs none)."""

    async def get(self, campaign_id: UUID) -> Template | None:
        """The campaign's template; None when the campaign does not exist (any more)."""
        found = await self.templates(campaign_id)
        return None if found is None else found.default

    async def templates(self, campaign_id: UUID) -> CampaignTemplates | None:
        """The campaign's templates; None when the campaign does not exist (any more)."""
        entry = self._entries.get(campaign_id)
        if entry is not None:
            self._entries.move_to_end(campaign_id)
            return entry.templates
        stored = await self._load(campaign_id)
        self.loads += 1
        if stored is None:
            return None
        default, variants = stored if isinstance(stored, tuple) else (stored, ())
        templates = CampaignTemplates(
            template_from_json(default), tuple(template_from_json(v) for v in variants)
        )
        # Kept even when larger than the budget alone: the batch in hand needs it, and the
        # next different campaign evicts it.
        self._add(campaign_id, _Entry(templates, len(orjson.dumps(stored))))
        return templates

    def forget(self, campaign_ids: Iterable[UUID]) -> None:
        """Drop the templates of campaigns that will send nothing more (cancelled, failed)."""
        for campaign_id in campaign_ids:
            entry = self._entries.pop(campaign_id, None)
            if entry is not None:
                self._bytes -= entry.size_bytes

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def _add(self, campaign_id: UUID, entry: _Entry) -> None:
        self._entries[campaign_id] = entry
        self._bytes += entry.size_bytes
        while len(self._entries) > 1 and (
            len(self._entries) > self._max_campaigns or self._bytes > self._max_bytes
        ):
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size_bytes
