"""Meta's template ``components``, as ``POST /{phone_number_id}/messages`` takes them.

The send body's ``template.components`` (Meta, "Send message templates" and its guides for
media, coupon-code, limited-time-offer, carousel, catalog, multi-product and flow templates:
https://developers.facebook.com/docs/whatsapp/cloud-api/guides/send-message-templates). A
campaign's components are checked here once, at the API's edge, so a malformed one is a 422
naming the field rather than a campaign whose every send fails (or a server error).

Every shape has a fixed depth (a component holds parameters, a carousel holds cards of
components, nothing holds itself) and every list, string and integer a bound: no input can
nest or grow past what the caps below allow. Types are matched case-insensitively (Meta's
examples use both ``body`` and ``BODY``) and stored lower case, as Meta documents them. The
objects inside a parameter (``image``, ``currency``...) may carry fields Meta adds later,
but only as plain scalars.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from dispatcher.meta.render import BODY_ONLY_TEXT_MAX_CHARS, MAX_MESSAGE_BYTES

MAX_COMPONENTS = 20
"""Per template: a header, a body, up to ten buttons and a carousel or offer fit well."""
MAX_PARAMETERS = 100
"""Per component: a body holds at most 1,024 characters, so not many more variables."""
MAX_CARDS = 10
"""Meta: a media-card carousel has up to ten cards."""
MAX_CARD_COMPONENTS = 10
"""Per card: a header, a body and up to two buttons (Meta), with room to spare."""
MAX_BUTTON_INDEX = 9
"""Meta: a template has up to ten buttons, indexed from 0."""
MAX_SECTIONS = 10
MAX_SECTION_ITEMS = 30
"""Meta: a multi-product message shows up to 30 products in up to 10 sections."""
MAX_OBJECT_FIELDS = 50
"""Fields of one object inside a parameter (``flow_action_data`` included)."""
MAX_TEXT_CHARS = 4_096
"""Any other string: captions, fallback values, payloads, tokens."""
MAX_COMPONENTS_BYTES = MAX_MESSAGE_BYTES
"""All of a template's components, serialized: no more than one whole message may be (a
body-only text parameter alone may hold 32,768 characters, up to 128 KiB in UTF-8)."""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class ComponentType(StrEnum):
    HEADER = "header"
    BODY = "body"
    BUTTON = "button"
    CAROUSEL = "carousel"
    LIMITED_TIME_OFFER = "limited_time_offer"
    TAP_TARGET_CONFIGURATION = "tap_target_configuration"


class ButtonSubType(StrEnum):
    QUICK_REPLY = "quick_reply"
    URL = "url"
    COPY_CODE = "copy_code"
    CATALOG = "catalog"
    MPM = "mpm"
    FLOW = "flow"
    VOICE_CALL = "voice_call"


class ParameterType(StrEnum):
    TEXT = "text"
    CURRENCY = "currency"
    DATE_TIME = "date_time"
    IMAGE = "image"
    DOCUMENT = "document"
    VIDEO = "video"
    GIF = "gif"
    LOCATION = "location"
    PRODUCT = "product"
    PAYLOAD = "payload"
    ACTION = "action"
    COUPON_CODE = "coupon_code"
    LIMITED_TIME_OFFER = "limited_time_offer"
    TAP_TARGET_CONFIGURATION = "tap_target_configuration"


Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=512)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Number = Int64 | Annotated[float, Field(allow_inf_nan=False)]
Scalar = bool | Int64 | Annotated[float, Field(allow_inf_nan=False)] | Text
"""A JSON leaf that Postgres (jsonb) and orjson both take: no integer past 64 bits."""


class Strict(BaseModel):
    """The schema's own objects: an unknown field is refused (a typo is not sent to Meta)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Open(BaseModel):
    """An object inside a parameter: its known fields typed, any other a bounded scalar."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, Scalar] = Field(init=False)

    @model_validator(mode="after")
    def _few_fields(self) -> Open:
        if len(self.__pydantic_extra__ or {}) + len(self.model_fields_set) > MAX_OBJECT_FIELDS:
            raise ValueError(f"has more than {MAX_OBJECT_FIELDS} fields")
        return self


class Currency(Open):
    fallback_value: Text
    code: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")]
    """ISO 4217."""
    amount_1000: Int64
    """The amount times 1,000."""


class DateTime(Open):
    fallback_value: Text


class Media(Open):
    """An ``image``, ``document``, ``video`` or ``gif``: an uploaded media id or a link."""

    id: Id | None = None
    link: Annotated[str, StringConstraints(min_length=1, max_length=2_048)] | None = None
    filename: Annotated[str, StringConstraints(max_length=240)] | None = None
    caption: Text | None = None

    @model_validator(mode="after")
    def _id_or_link(self) -> Media:
        if (self.id is None) == (self.link is None):
            raise ValueError("give exactly one of id and link")
        return self


class Location(Open):
    latitude: (
        Annotated[float, Field(ge=-90, le=90)] | Annotated[str, StringConstraints(max_length=32)]
    )
    longitude: (
        Annotated[float, Field(ge=-180, le=180)] | Annotated[str, StringConstraints(max_length=32)]
    )
    name: Text | None = None
    address: Text | None = None


class Product(Open):
    catalog_id: Id
    product_retailer_id: Id


class ProductItem(Open):
    product_retailer_id: Id


class Section(Open):
    title: Annotated[str, StringConstraints(max_length=24)] | None = None
    product_items: Annotated[list[ProductItem], Field(min_length=1, max_length=MAX_SECTION_ITEMS)]


FlowValue = Scalar | Annotated[list[Scalar], Field(max_length=MAX_OBJECT_FIELDS)]


class Action(Open):
    """A ``flow`` button's token and first-screen data, or a ``catalog`` / ``mpm`` button's
    thumbnail and product sections."""

    flow_token: Text | None = None
    flow_action_data: (
        Annotated[dict[Key, FlowValue], Field(max_length=MAX_OBJECT_FIELDS)] | None
    ) = None
    thumbnail_product_retailer_id: Id | None = None
    sections: Annotated[list[Section], Field(min_length=1, max_length=MAX_SECTIONS)] | None = None


class LimitedTimeOffer(Open):
    expiration_time_ms: Annotated[int, Field(ge=0, le=INT64_MAX)]
    """When the offer ends, in milliseconds since the epoch."""


class TapTarget(Open):
    url: Annotated[str, StringConstraints(min_length=1, max_length=2_048)]
    title: Text


class Parameter(Strict):
    """One value for a component: ``type`` names the field that carries it."""

    type: Annotated[ParameterType, BeforeValidator(_lower)]
    parameter_name: Key | None = Field(
        default=None, description="A named-parameter template's variable name (body, header)."
    )
    text: Annotated[str, StringConstraints(max_length=BODY_ONLY_TEXT_MAX_CHARS)] | None = Field(
        default=None,
        description="Meta's limits by component (60 characters in a header...) are checked "
        "when a recipient's message is rendered, variables filled in.",
    )
    currency: Currency | None = None
    date_time: DateTime | None = None
    image: Media | None = None
    document: Media | None = None
    video: Media | None = None
    gif: Media | None = None
    location: Location | None = None
    product: Product | None = None
    payload: Text | None = None
    action: Action | None = None
    coupon_code: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    limited_time_offer: LimitedTimeOffer | None = None
    tap_target_configuration: (
        Annotated[list[TapTarget], Field(min_length=1, max_length=10)] | None
    ) = None

    @model_validator(mode="after")
    def _value_of_its_type(self) -> Parameter:
        given = {name for name in _VALUE_FIELDS if getattr(self, name) is not None}
        if self.type.value not in given:
            raise ValueError(f"a {self.type.value} parameter needs its {self.type.value!r} field")
        if others := sorted(given - {self.type.value}):
            raise ValueError(f"a {self.type.value} parameter cannot carry {', '.join(others)}")
        return self


_VALUE_FIELDS = tuple(kind.value for kind in ParameterType)

Parameters = Annotated[list[Parameter], Field(max_length=MAX_PARAMETERS)]
ButtonIndex = (
    Annotated[int, Field(ge=0, le=MAX_BUTTON_INDEX)]
    | Annotated[str, StringConstraints(pattern=rf"^[0-{MAX_BUTTON_INDEX}]$")]
)
"""Meta's examples give it as a number and as a string: both are kept as given."""


class CardComponent(Strict):
    """A component of a carousel card: a header, a body or a button."""

    ALLOWED: ClassVar[frozenset[ComponentType]] = frozenset(
        {ComponentType.HEADER, ComponentType.BODY, ComponentType.BUTTON}
    )

    type: Annotated[ComponentType, BeforeValidator(_lower)]
    sub_type: Annotated[ButtonSubType, BeforeValidator(_lower)] | None = Field(
        default=None, description="Buttons only, and required for them."
    )
    index: ButtonIndex | None = Field(
        default=None, description="Buttons only, and required for them: the button's position."
    )
    parameters: Parameters | None = None

    @model_validator(mode="after")
    def _shape_of_its_type(self) -> CardComponent:
        if self.type not in self.ALLOWED:
            raise ValueError(f"type {self.type.value} is not allowed here")
        is_button = self.type is ComponentType.BUTTON
        if is_button and (self.sub_type is None or self.index is None):
            raise ValueError("a button needs sub_type and index")
        if not is_button and (self.sub_type is not None or self.index is not None):
            raise ValueError("only a button has sub_type and index")
        return self


class Card(Strict):
    card_index: Annotated[int, Field(ge=0, lt=MAX_CARDS)]
    components: Annotated[list[CardComponent], Field(max_length=MAX_CARD_COMPONENTS)]


class Component(CardComponent):
    """A component of the template: header, body, button, carousel (with ``cards``),
    limited-time offer or tap-target configuration."""

    ALLOWED: ClassVar[frozenset[ComponentType]] = frozenset(ComponentType)

    cards: Annotated[list[Card], Field(min_length=1, max_length=MAX_CARDS)] | None = Field(
        default=None, description="A carousel's cards, and only a carousel's."
    )

    @model_validator(mode="after")
    def _cards_for_a_carousel(self) -> Component:
        is_carousel = self.type is ComponentType.CAROUSEL
        if is_carousel and (self.cards is None or self.parameters is not None):
            raise ValueError("a carousel has cards and no parameters")
        if not is_carousel and self.cards is not None:
            raise ValueError("only a carousel has cards")
        return self


def as_json(components: list[Component]) -> list[dict[str, Any]]:
    """The components as Meta takes them (fields not given are left out)."""
    return [component.model_dump(mode="json", exclude_none=True) for component in components]


def _small(components: list[Component]) -> list[Component]:
    size = len(orjson.dumps(as_json(components)))
    if size > MAX_COMPONENTS_BYTES:
        raise ValueError(f"{size} bytes serialized, more than {MAX_COMPONENTS_BYTES}")
    return components


Components = Annotated[list[Component], Field(max_length=MAX_COMPONENTS), AfterValidator(_small)]
"""A template's components, within every cap above."""
