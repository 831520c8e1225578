"""List hygiene in the store: a phone in no numbering plan is kept ``invalid`` (final, counted,
never claimed); an upload that holds one is not refused; a BSUID is never invalid."""

from __future__ import annotations

import pytest

from dispatcher import operations
from dispatcher.errors import InvalidRecipientError
from dispatcher.store import Store
from dispatcher.store.models import NewRecipient, RecipientStatus
from tests.store.conftest import MakeWorld, phones

# Right shape, no such number: Brazil has no area code 10; +1 555 01xx is reserved for fiction;
# a Brazilian mobile has nine digits after the area code, not ten.
IMPOSSIBLE = ("+5510987654321", "+15550100000", "+55119876543210")


async def test_impossible_numbers_are_kept_invalid_and_never_claimed(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world()
    rows = [
        *phones(3),
        *(NewRecipient(phone=p) for p in IMPOSSIBLE),
        NewRecipient(phone=IMPOSSIBLE[0]),  # a repeat of an invalid number: invalid, not duplicate
        NewRecipient(phone=phones(1)[0].phone),  # a repeat of a valid one: a duplicate
        NewRecipient(user_id="BR.abc123"),  # a BSUID is not a phone number: never invalid
    ]
    added = await store.recipients.ingest(world.campaign.id, rows)
    assert (added.rows, added.duplicates, added.invalid, added.unique) == (9, 1, 4, 4)

    campaign = await store.campaigns.get(world.campaign.id)
    assert campaign is not None
    assert campaign.total_recipients == 9
    assert campaign.total_invalid == 4
    assert campaign.total_duplicates == 1
    assert campaign.pending == 4
    invalid = await store.recipients.page(world.campaign.id, status=RecipientStatus.INVALID)
    assert [r.phone for r in invalid] == [*IMPOSSIBLE, IMPOSSIBLE[0]]

    claimed = await store.recipients.claim_pending(world.campaign.id, 100)
    assert claimed is not None
    addresses = {r.address for r in claimed.recipients}
    assert addresses == {*(p.phone for p in phones(3)), "BR.abc123"}
    assert not addresses & set(IMPOSSIBLE)
    assert await store.recipients.claim_pending(world.campaign.id, 100) is None


async def test_a_campaign_created_with_invalid_numbers_counts_them(store: Store) -> None:
    """The create path (inline recipients) stages the same way as an append."""
    instance = await store.instances.upsert("pn-hygiene", "biz-hygiene", "token-hygiene")
    campaign = await operations.create_campaign(
        store,
        name="hygiene",
        template={"name": "promo", "language": "pt_BR"},
        instance_ids=[instance.id],
        recipients=[NewRecipient(phone="+5511987654321"), NewRecipient(phone=IMPOSSIBLE[1])],
    )
    assert (campaign.total_recipients, campaign.total_invalid, campaign.pending) == (2, 1, 1)


async def test_a_shape_error_still_rejects_the_whole_upload(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world()
    with pytest.raises(InvalidRecipientError) as raised:
        await store.recipients.ingest(
            world.campaign.id,
            [*phones(2), NewRecipient(phone=IMPOSSIBLE[0]), NewRecipient(phone="12345")],
        )
    assert raised.value.index == 3
    campaign = await store.campaigns.get(world.campaign.id)
    assert campaign is not None
    assert (campaign.total_recipients, campaign.total_invalid) == (0, 0)
